import Testing
@testable import LabrunKit

@Suite struct ImagesSnapshotTableTests {
    static let snapshots = [
        SnapshotInfo(id: "1", name: "before-patch", vmStateSize: 95_630_950, dateSeconds: 1_795_723_189, dateNanoseconds: 305_578_000,
                     vmClockSeconds: 3723, vmClockNanoseconds: 45_600_000),
        SnapshotInfo(id: "12", name: "été", vmStateSize: 0, dateSeconds: 1_795_723_200),
    ]

    @Test func rendersATable() {
        let lines = SnapshotTable.render(Self.snapshots).split(separator: "\n").map(String.init)
        let d1 = CalendarTime.local(1_795_723_189), d2 = CalendarTime.local(1_795_723_200)
        let stamp = { (t: CalendarTime) in t.date(separator: "-") + " " + t.time(separator: ":") }
        #expect(lines == [
            "NAME          ID  VM STATE   DATE                 VM CLOCK",
            "before-patch  1   91.2 MiB   \(stamp(d1))  01:02:03.045",
            "été           12  disk only  \(stamp(d2))  00:00:00.000",
        ])
        #expect(SnapshotTable.render([]) == "no snapshots")
    }

    @Test func rendersJSON() {
        #expect(SnapshotTable.json(Self.snapshots) == """
            [
              {
                "date" : "2026-11-26T19:59:49Z",
                "id" : "1",
                "name" : "before-patch",
                "vm_clock_ns" : 3723045600000,
                "vm_state_size" : 95630950
              },
              {
                "date" : "2026-11-26T20:00:00Z",
                "id" : "12",
                "name" : "été",
                "vm_clock_ns" : 0,
                "vm_state_size" : 0
              }
            ]
            """)
        #expect(SnapshotTable.json([]) == "[]")
    }

    static let sizes: [(UInt64, String)] = [
        (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (95_630_950, "91.2 MiB"),
        (1024 * 1024 - 1, "1.0 MiB"), ((3 << 30) + (1 << 29), "3.5 GiB"), (UInt64.max, "16.0 EiB"),
    ]

    @Test(arguments: sizes) func formatsBytes(_ c: (UInt64, String)) {
        #expect(formatBytes(c.0) == c.1)
    }
}
