import FoundationEssentials
import Testing
@testable import LabrunKit

/// Issue 15 §5, the parts that need no QEMU: the export request on the wire, its progress,
/// and the parsing of qemu-img's progress output.
struct ExportUnitTests {
    @Test func exportRequestRoundTrips() throws {
        let request = ControlRequest(.export(path: "/tmp/x.qcow2.1.part", compress: true, speed: 5))
        #expect(request.op == .export)
        let decoded = try ControlRequest.decode(Array(request.encodedLine().dropLast())).get()
        #expect(decoded == request)
        // Fields left out take their defaults.
        let bare = try ControlRequest.decode(Array(#"{"v":1,"op":"export","path":"/p"}"#.utf8)).get()
        #expect(bare.command == .export(path: "/p", compress: false, speed: 0))
    }

    @Test func progressCarriesTheTransfer() throws {
        var p = ControlResponse.progress("exporting")
        p.transfer = TransferProgress(done: 50, total: 200)
        let back = try JSONDecoder().decode(ControlResponse.self, from: Data(p.encodedLine()))
        #expect(back.transfer?.percent == 25 && back.final == false)
        #expect(TransferProgress(done: 1, total: 0).percent == 0)
    }

    @Test func qemuImgProgressIsParsed() {
        #expect(QemuImg.lastPercent(Array("    (0.00/100%)\r    (12.50/100%)\r".utf8)) == 12.5)
        #expect(QemuImg.lastPercent(Array("    (100.00/100%)\r\n".utf8)) == 100)
        #expect(QemuImg.lastPercent(Array("    (33.0".utf8)) == nil)
        #expect(QemuImg.lastPercent(Array("(5.00/100%)\r(6.".utf8)) == 5)
    }
}
