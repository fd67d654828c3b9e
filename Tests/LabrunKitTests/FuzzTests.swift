import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

// Issue 7, "Fuzzing": seeded property tests of everything that parses bytes labrun does not
// control: keys from the user's terminal (EscapeParser), lines from QEMU (QMPMessage,
// QMPClient), requests from other processes (ControlRequest, ControlServer) and lines from the
// guest (GuestAgent). Random and mutated input; the properties: no crash, no hang (every test
// has a time limit), nothing valid lost or misrouted, every non-escape byte forwarded in order.
//
// Sizes: LABRUN_FUZZ_ITERATIONS (default small, so the normal suite stays fast) and
// LABRUN_FUZZ_SEED (default fixed, so a failure reproduces). scripts/fuzz.sh runs them long
// with fresh seeds and prints the seed of a failing run.

enum Fuzz {
    static let iterations: Int = env("LABRUN_FUZZ_ITERATIONS").flatMap { Int($0) }.map { max(1, $0) } ?? 200
    static let seed: UInt64 = env("LABRUN_FUZZ_SEED").flatMap { UInt64($0) } ?? 0x1AB_5EED

    static func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    /// A generator for one test, its seed derived from the run's seed and the test's name.
    static func rng(_ test: String) -> SplitMix64 {
        SplitMix64(seed: seed ^ UInt64(truncatingIfNeeded: fnv1aValue(test)))
    }

    static func fnv1aValue(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h
    }

    /// A note attached to failures: how to reproduce this run.
    static var reproduce: String { "LABRUN_FUZZ_SEED=\(seed) LABRUN_FUZZ_ITERATIONS=\(iterations)" }
}

extension SplitMix64 {
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in byte() } }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    /// Flips, inserts, deletes, duplicates or truncates a few bytes of `input`.
    mutating func mutate(_ input: [UInt8], avoidingNewline: Bool = true) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + below(4)) {
            let at = below(b.count + 1)
            switch below(6) {
            case 0 where !b.isEmpty && at < b.count: b[at] = byte()
            case 1: b.insert(byte(), at: at)
            case 2 where at < b.count: b.remove(at: at)
            case 3 where at < b.count: b.insert(contentsOf: b[at..<min(b.count, at + below(16))], at: at)
            case 4: b = Array(b.prefix(at))
            default: b.insert(pick([0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x3A, 0x2C, 0x00, 0xFF, 0xC3]), at: at)
            }
        }
        return avoidingNewline ? b.map { $0 == 0x0A ? 0x20 : $0 } : b
    }

    /// Splits `bytes` into random chunks (the reads a socket might deliver).
    mutating func chunks(_ bytes: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            let k = pick([1, 2, 3, 7, 64, 1000, 4096, rest.count])
            out.append(Array(rest.prefix(k)))
            rest = rest.dropFirst(k)
        }
        return out
    }
}

func socketPair() throws -> (FileDescriptor, FileDescriptor) {
    var fds: [Int32] = [0, 0]
    try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

// MARK: the escape parser

@Suite(.timeLimit(.minutes(5))) struct FuzzEscapeParserTests {
    /// The reference: one pass over the whole input, the way the key table documents it.
    static func reference(_ input: [UInt8]) -> (forwarded: [UInt8], commands: [EscapeCommand], awaiting: Bool) {
        var forwarded: [UInt8] = [], commands: [EscapeCommand] = []
        var i = 0
        while i < input.count {
            guard input[i] == EscapeKeys.escape else { forwarded.append(input[i]); i += 1; continue }
            guard i + 1 < input.count else { return (forwarded, commands, true) }
            let k = input[i + 1]
            if k == EscapeKeys.escape || k == UInt8(ascii: "a") || k == UInt8(ascii: "A") { forwarded.append(k == EscapeKeys.escape ? k : EscapeKeys.escape) } else { commands.append(EscapeKeys.command(for: k)) }
            i += 2
        }
        return (forwarded, commands, false)
    }

    /// Input shaped like real typing (shell lines, arrow keys, UTF-8, control keys) with
    /// escapes and stray bytes sprinkled in, at densities from none to mostly Ctrl-a.
    static func input(_ rng: inout SplitMix64) -> [UInt8] {
        let pieces: [[UInt8]] = [
            Array("uname -r\r".utf8), Array("ls -la /mnt\r".utf8), [0x1B, 0x5B, 0x41], [0x1B, 0x5B, 0x44], [0x03], [0x04], [0x1A],
            Array("é€😀".utf8), [0x7F], [0x01], [0x01, 0x01], [0x01, 0x61], [0x01, 0x41], [0x01, 0x78], [0x01, 0x73], [0x01, 0x63],
            [0x01, 0x68], [0x01, 0x69], [0x01, 0x62], [0x01, 0x7A], [0x01, 0x00], [0x01, 0xFF], [0x01, 0x0D],
        ]
        let escapeDensity = rng.pick([0, 2, 10, 50, 90])
        var out: [UInt8] = []
        for _ in 0..<rng.below(rng.pick([4, 40, 400])) {
            switch rng.below(3) {
            case 0: out += rng.pick(pieces)
            case 1: out.append(rng.chance(escapeDensity) ? EscapeKeys.escape : rng.byte())
            default: out += rng.bytes(rng.below(8))
            }
        }
        return rng.chance(20) ? rng.mutate(out, avoidingNewline: false) : out
    }

    @Test func everyNonEscapeByteIsForwardedInOrderHoweverTheReadsSplit() {
        var rng = Fuzz.rng(#function)
        for iteration in 0..<Fuzz.iterations * 5 {
            let input = Self.input(&rng)
            let want = Self.reference(input)
            var parser = EscapeParser()
            var forwarded: [UInt8] = [], commands: [EscapeCommand] = []
            var emptyForward = false
            for chunk in rng.chunks(input) {
                for action in parser.feed(chunk) {
                    switch action {
                    case .forward(let b): forwarded += b; emptyForward = emptyForward || b.isEmpty
                    case .command(let c): commands.append(c)
                    }
                }
            }
            #expect(forwarded == want.forwarded, "iteration \(iteration): input \(input) [\(Fuzz.reproduce)]")
            #expect(commands == want.commands, "iteration \(iteration): input \(input) [\(Fuzz.reproduce)]")
            #expect(parser.awaitingCommand == want.awaiting, "iteration \(iteration) [\(Fuzz.reproduce)]")
            #expect(!emptyForward, "an empty forward action [\(Fuzz.reproduce)]")
            if forwarded != want.forwarded || commands != want.commands { return }
        }
    }

    /// The same input fed whole and byte by byte gives the same actions once adjacent
    /// forwards are merged: the parser has no hidden state besides the pending Ctrl-a.
    @Test func feedingByteByByteEqualsFeedingWhole() {
        var rng = Fuzz.rng(#function)
        func merged(_ actions: [ConsoleAction]) -> [ConsoleAction] {
            var out: [ConsoleAction] = []
            for a in actions {
                if case .forward(let b) = a, case .forward(let prev)? = out.last { out[out.count - 1] = .forward(prev + b) } else { out.append(a) }
            }
            return out
        }
        for _ in 0..<Fuzz.iterations {
            let input = Self.input(&rng)
            var whole = EscapeParser(), single = EscapeParser()
            let a = whole.feed(input)
            var b: [ConsoleAction] = []
            for byte in input { b += single.feed([byte]) }
            #expect(merged(a) == merged(b), "input \(input) [\(Fuzz.reproduce)]")
        }
    }
}

// MARK: QMP

@Suite(.timeLimit(.minutes(5))) struct FuzzQMPTests {
    static let valid: [String] = [
        #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}"#,
        #"{"return": {}, "id": 1}"#,
        #"{"return": {"status": "running", "singlestep": false, "running": true}, "id": 12}"#,
        #"{"return": "Error: Device 'x' does not have the requested snapshot\r\n", "id": 3}"#,
        #"{"error": {"class": "GenericError", "desc": "nope"}, "id": 4}"#,
        #"{"timestamp": {"seconds": 1700000000, "microseconds": 12}, "event": "STOP"}"#,
        #"{"timestamp": {"seconds": 1700000000, "microseconds": 99}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#,
        #"{"return": [{"node-name": "runtime", "image": {"snapshots": [{"id": "1", "name": "a", "vm-state-size": 95830016, "date-sec": 1, "date-nsec": 2, "vm-clock-sec": 3, "vm-clock-nsec": 4}]}}], "id": 7}"#,
    ]

    /// Random bytes, mutated QMP lines, odd-but-valid JSON, deep nesting, huge numbers.
    static func line(_ rng: inout SplitMix64) -> [UInt8] {
        switch rng.below(7) {
        case 0: return rng.bytes(rng.below(200)).map { $0 == 0x0A ? 0x20 : $0 }
        case 1, 2: return rng.mutate(Array(rng.pick(valid).utf8))
        case 3:
            let depth = rng.pick([10, 100, 600, 5000])
            let open = rng.chance(50) ? "[" : "{\"a\":"
            return Array((String(repeating: open, count: depth) + (rng.chance(50) ? "1" : "")).utf8)
        case 4: return Array(rng.pick([#"{"return": {}, "id": 1e400}"#, #"{"return": {}, "id": -9223372036854775809}"#,
                                       #"{"return": {}, "id": 1.5}"#, #"{"return": {}, "id": "1"}"#, #"{"event": 5}"#,
                                       #"{"error": {"class": 1}, "id": 2}"#, #"{"QMP": null}"#, #"{"id": 2}"#, "null", "\"\"", "{}",
                                       "{\"return\": \"\\ud800\", \"id\": 2}", "{\"event\": \"\u{0}\"}"]).utf8)
        case 5: return Array(rng.pick(valid).utf8)
        default: return []
        }
    }

    @Test func decoderNeverCrashesAndKeepsValidMessages() throws {
        var rng = Fuzz.rng(#function)
        for _ in 0..<Fuzz.iterations * 5 {
            let l = Self.line(&rng)
            _ = try? QMPMessage.decode(l)
        }
        // The valid lines decode to what they say.
        #expect(try QMPMessage.decode(Array(Self.valid[0].utf8)) == .greeting)
        #expect(try QMPMessage.decode(Array(Self.valid[4].utf8)) == .reply(id: 4, .failure(QMPError(errorClass: "GenericError", desc: "nope"))))
        #expect(try QMPMessage.decode(Array(Self.valid[5].utf8)) == .event(name: "STOP", data: nil))
    }

    /// A fake QEMU sends the greeting, then answers the client's commands in random order,
    /// interleaving events, garbage lines and mutated lines, in random chunks. Every command's
    /// completion runs exactly once with its own answer; the real events arrive in order.
    @Test func clientMatchesEveryReplyDespiteGarbageAndSplitReads() throws {
        var rng = Fuzz.rng(#function)
        for iteration in 0..<max(1, Fuzz.iterations / 4) {
            let (mine, qemu) = try socketPair()
            defer { qemu.close() }
            try mine.setNonBlocking(true)
            let client = QMPClient(fd: mine)
            var events: [String] = []
            client.onEvent = { name, _ in events.append(name) }
            let count = 1 + rng.below(12)
            var results: [Int: [Result<JSONValue, QMPError>]] = [:]
            for i in 0..<count { client.send(.human("info \(i)")) { results[i, default: []].append($0) } }

            // Anything that decodes as a reply or greeting is kept out of the garbage: replies
            // must come only from the script below (a mutated line can still be valid JSON).
            func garbage() -> [UInt8] {
                while true {
                    let g = Self.line(&rng)
                    switch try? QMPMessage.decode(g) {
                    case .reply?, .greeting?, .event?: continue
                    default: return g + [0x0A]
                    }
                }
            }
            func deliver(_ bytes: [UInt8]) throws {
                for chunk in rng.chunks(bytes) {
                    try qemu.writeAll(chunk)
                    client.handleReadable()
                }
            }
            func readCommands(_ n: Int) throws -> [Int] {
                var ids: [Int] = []
                var buffer = LineBuffer()
                try qemu.setNonBlocking(false)
                while ids.count < n {
                    let b = try qemu.read(upTo: 4096).get()
                    try #require(!b.isEmpty, "the client closed the connection [\(Fuzz.reproduce)]")
                    for line in try buffer.append(b) {
                        let object = try JSONDecoder().decode(JSONValue.self, from: Data(line))
                        ids.append(Int(try #require(object["id"]?.int)))
                    }
                }
                return ids
            }

            var preamble: [UInt8] = []
            for _ in 0..<rng.below(3) { preamble += garbage() }
            try deliver(preamble + Array((Self.valid[0] + "\r\n").utf8))
            let handshake = try readCommands(1)
            try deliver(garbage() + Array("{\"return\": {}, \"id\": \(handshake[0])}\r\n".utf8))
            try #require(client.isReady, "no handshake in iteration \(iteration) [\(Fuzz.reproduce)]")
            let ids = try readCommands(count)
            #expect(Set(ids).count == count, "ids are unique")

            var script: [UInt8] = []
            var sentEvents: [String] = []
            for (i, id) in ids.enumerated().shuffled(using: &rng) {
                if rng.chance(30) { let e = "EV\(rng.below(1000))"; sentEvents.append(e); script += Array("{\"event\": \"\(e)\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n".utf8) }
                for _ in 0..<rng.below(3) { script += garbage() }
                script += Array((i % 3 == 0 ? "{\"error\": {\"class\": \"GenericError\", \"desc\": \"e\(i)\"}, \"id\": \(id)}"
                                            : "{\"return\": \"r\(i)\", \"id\": \(id)}") .utf8) + [0x0D, 0x0A]
            }
            try deliver(script)

            #expect(!client.isClosed, "garbage closed the QMP connection [\(Fuzz.reproduce)]")
            #expect(events == sentEvents, "\(Fuzz.reproduce)")
            for i in 0..<count {
                let want: Result<JSONValue, QMPError> = i % 3 == 0 ? .failure(QMPError(errorClass: "GenericError", desc: "e\(i)")) : .success(.string("r\(i)"))
                #expect(results[i] == [want], "command \(i) of iteration \(iteration) [\(Fuzz.reproduce)]")
            }
            client.close()
        }
    }

    /// Deep nesting is refused, not a stack overflow.
    @Test func deeplyNestedJSONIsRefusedNotACrash() {
        for depth in [1000, 100_000] {
            for open in ["[", "{\"a\":"] {
                _ = try? QMPMessage.decode(Array(String(repeating: open, count: depth).utf8))
                _ = ControlRequest.decode(Array(("{\"v\":1,\"op\":\"status\",\"name\":" + String(repeating: open, count: depth)).utf8))
            }
        }
    }
}

extension SplitMix64: RandomNumberGenerator {}

// MARK: the control protocol

@Suite(.timeLimit(.minutes(5))) struct FuzzControlTests {
    static func validRequests() -> [ControlRequest] {
        [ControlRequest(.status), ControlRequest(.snapshot(.create(name: "before-patch", force: true, diskOnly: false))),
         ControlRequest(.snapshot(.restore(name: "ünïcode-1"))), ControlRequest(.snapshot(.delete(name: "x"))),
         ControlRequest(.snapshot(.list)), ControlRequest(.stop), ControlRequest(.exec(command: "echo hi; ls /", timeout: 5)),
         ControlRequest(.waitReady), ControlRequest(.suspend)]
    }

    /// Random JSON objects with the protocol's keys and wrong-typed or odd values.
    static func structured(_ rng: inout SplitMix64) -> [UInt8] {
        let keys = ["v", "op", "name", "force", "diskOnly", "command", "timeout", "extra", ""]
        let values = ["1", "2", "0", "-1", "1.0", "1e3", "99999999999999999999", "null", "true", "\"1\"", "\"status\"",
                      "\"snapshot.create\"", "\"exec\"", "\"\"", "[]", "{}", "\"\\u0000\"", "\"a\\nb\"", "\"\\ud83d\""]
        let fields = (0..<rng.below(6)).map { _ in "\"\(rng.pick(keys))\":\(rng.pick(values))" }
        return Array(("{" + fields.joined(separator: ",") + "}").utf8)
    }

    @Test func decoderRefusesInOneLineOrRoundTrips() throws {
        var rng = Fuzz.rng(#function)
        let valid = Self.validRequests().map { Array($0.encodedLine().dropLast()) }
        for _ in 0..<Fuzz.iterations * 5 {
            let line: [UInt8] = switch rng.below(4) {
            case 0: rng.bytes(rng.below(300)).map { $0 == 0x0A ? 0x20 : $0 }
            case 1: Self.structured(&rng)
            default: rng.mutate(rng.pick(valid))
            }
            switch ControlRequest.decode(line) {
            case .success(let request):
                #expect(request.v == ControlProtocol.version)
                // What was accepted survives a round trip unchanged.
                #expect(try ControlRequest.decode(Array(request.encodedLine().dropLast())).get() == request, "\(Fuzz.reproduce)")
            case .failure(let error):
                #expect(!error.message.isEmpty && error.exitCode != 0)
                #expect(!error.message.unicodeScalars.contains { $0 == "\n" || $0 == "\r" }, "\(error.message) [\(Fuzz.reproduce)]")
            }
        }
        for (request, line) in zip(Self.validRequests(), valid) {
            #expect((try? ControlRequest.decode(line).get()) == request)
        }
    }

    /// A real ControlServer on a socket, driven by a poll loop as the supervisor drives it, with
    /// many clients at once sending garbage, mutated, oversized, split and valid requests, some
    /// hanging up early. Every client that waits gets exactly one final response line (valid
    /// JSON) and the connection closed; valid requests reach `onRequest`; the server then
    /// still answers a plain client.
    @Test func serverAnswersEveryClientOnceAndKeepsServing() throws {
        var rng = Fuzz.rng(#function)
        // As in the supervisor: a peer that hung up is an EPIPE, not a fatal signal.
        signal(SIGPIPE, SIG_IGN)
        var template = Array("/tmp/labrun-fuzz-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        defer { _ = try? Spawner.run("rm", ["-rf", dir]) }
        let server = try ControlServer(path: dir + "/control.sock")
        defer { server.close() }
        var handled = 0
        server.onRequest = { id, request in
            handled += 1
            var r = ControlResponse()
            r.message = "handled \(request.op.rawValue)"
            if request.op == .snapshotList { server.respond(id, .progress("working")) }
            server.respond(id, r)
        }
        let valid = Self.validRequests().map { Array($0.encodedLine()) }

        struct Client {
            var fd: FileDescriptor
            var outbox: [UInt8]
            var received: [UInt8] = []
            var closed = false
            var hangUpEarly: Bool
            var validRequest: Bool
            var answered: Bool
            var doneSending = false
        }
        for round in 0..<max(1, Fuzz.iterations / 20) {
            var clients: [Client] = []
            for _ in 0..<(1 + rng.below(24)) {
                let fd = try UnixSocket.connect(path: server.path)
                try fd.setNonBlocking(true)
                // Accept at once, as the supervisor's loop would: a full backlog blocks connect.
                server.handle(server.listener, Readiness(readable: true, writable: false, hangup: false, invalid: false))
                var isValid = false
                let payload: [UInt8]
                switch rng.below(6) {
                case 0: payload = rng.bytes(rng.below(500)) + (rng.chance(80) ? [0x0A] : [])
                case 1: payload = Self.structured(&rng) + [0x0A]
                case 2: payload = rng.mutate(Array(rng.pick(valid).dropLast())) + [0x0A]
                case 3: payload = Array(repeating: rng.pick([0x41, 0x7B, 0x00]), count: ControlProtocol.maxRequestBytes + 1 + rng.below(200_000))
                case 4: payload = rng.pick(valid) + rng.bytes(rng.below(64)) // a second line is ignored
                default: payload = rng.pick(valid); isValid = true
                }
                isValid = isValid || payload.firstIndex(of: 0x0A).map { (try? ControlRequest.decode(Array(payload[..<$0])).get()) != nil } ?? false
                // A request line, or an oversized one, gets one answer; a short fragment without
                // a newline gets none: the server drops it when the client stops sending.
                let answered = payload.contains(0x0A) || payload.count > ControlProtocol.maxRequestBytes
                clients.append(Client(fd: fd, outbox: payload, hangUpEarly: rng.chance(10), validRequest: isValid, answered: answered))
            }
            let deadline = monotonicSeconds() + 30
            while clients.contains(where: { !$0.closed }) && monotonicSeconds() < deadline {
                var set = PollSet()
                for interest in server.interests { set.add(interest) }
                for c in clients where !c.closed { set.add(c.fd, read: true, write: !c.outbox.isEmpty) }
                let ready = try set.wait(timeout: 100)
                for (fd, r) in ready where server.owns(fd) { server.handle(fd, r) }
                for i in clients.indices where !clients[i].closed {
                    guard let r = ready[clients[i].fd] else { continue }
                    if r.writable && !clients[i].outbox.isEmpty {
                        switch clients[i].fd.write(clients[i].outbox.prefix(rng.pick([1, 100, 65536]))) {
                        case .success(let n): clients[i].outbox.removeFirst(n)
                        case .failure(.wouldBlock): break
                        case .failure: clients[i].outbox.removeAll() // the server closed on us (oversized)
                        }
                        if clients[i].hangUpEarly { clients[i].fd.close(); clients[i].closed = true; continue }
                    }
                    if clients[i].outbox.isEmpty && !clients[i].doneSending {
                        // Done sending: half-close, as a client that has nothing more to say.
                        _ = shutdown(clients[i].fd.rawValue, Int32(SHUT_WR))
                        clients[i].doneSending = true
                    }
                    if r.readable || r.hangup {
                        switch clients[i].fd.read() {
                        case .success(let b) where !b.isEmpty: clients[i].received += b
                        case .failure(.wouldBlock): break
                        default: clients[i].fd.close(); clients[i].closed = true
                        }
                    }
                }
            }
            #expect(!clients.contains { !$0.closed }, "round \(round): a client never got its answer and close [\(Fuzz.reproduce)]")
            for c in clients where !c.closed { c.fd.close() }
            for c in clients where !c.hangUpEarly {
                let lines = c.received.split(separator: 0x0A).map(Array.init)
                let responses = lines.compactMap { try? JSONDecoder().decode(ControlResponse.self, from: Data($0)) }
                #expect(responses.count == lines.count, "a response line is not valid JSON [\(Fuzz.reproduce)]")
                #expect(responses.filter(\.final).count == (c.answered ? 1 : 0) && (responses.isEmpty || responses.last?.final == true),
                        "round \(round): \(String(decoding: c.received, as: UTF8.self)) for \(c.validRequest ? "a valid" : "an invalid") request [\(Fuzz.reproduce)]")
                if c.validRequest { #expect(responses.last?.ok == true && responses.last?.message?.hasPrefix("handled") == true, "\(Fuzz.reproduce)") }
                else if let last = responses.last { #expect(!last.ok, "\(Fuzz.reproduce)") }
            }
        }
        #expect(handled > 0)
        // Still serving: a plain client gets its answer.
        let fd = try UnixSocket.connect(path: server.path)
        try fd.writeAll(ControlRequest(.status).encodedLine())
        try fd.setNonBlocking(true)
        var got: [UInt8] = []
        let deadline = monotonicSeconds() + 5
        while !got.contains(0x0A) && monotonicSeconds() < deadline {
            var set = PollSet()
            for interest in server.interests { set.add(interest) }
            set.add(fd)
            let ready = try set.wait(timeout: 100)
            for (sfd, r) in ready where server.owns(sfd) { server.handle(sfd, r) }
            if ready[fd] != nil, case .success(let b) = fd.read() { got += b }
        }
        fd.close()
        #expect(String(decoding: got, as: UTF8.self).contains("handled status"))
    }
}

// MARK: the guest agent

@Suite(.timeLimit(.minutes(5))) struct FuzzGuestAgentTests {
    /// Lines the host must shrug off: random bytes, non-numeric ids, ids nobody asked for with
    /// any verb and payload (bad base64, huge exit codes), empty lines, stray spaces.
    static func noise(_ rng: inout SplitMix64) -> [UInt8] {
        let b64 = Data(rng.bytes(rng.below(40))).base64EncodedString()
        let otherID = String(1_000_000 + rng.below(1_000_000))
        let line: String = switch rng.below(8) {
        case 0: String(decoding: rng.bytes(rng.below(120)).map { $0 == 0x0A ? 0x41 : $0 }, as: UTF8.self)
        case 1: "\(otherID) \(rng.pick(["out", "err", "exit", "ok", "fail", "hello", "", "OUT"])) \(rng.pick([b64, "!!notbase64!!", "99999999999999", "-5", "", "a b c"]))"
        case 2: "x\(rng.below(10)) out \(b64)"
        case 3: ""
        case 4: "   "
        case 5: "-1 exit 3"
        case 6: "\(otherID)"
        default: String(decoding: rng.mutate(Array("\(otherID) out \(b64)".utf8)), as: UTF8.self)
        }
        var bytes = Array(line.utf8).map { $0 == 0x0A ? 0x20 : $0 }
        // Never the agent's own restart line for id 0, and never one of the live ids.
        if let first = String(decoding: bytes, as: UTF8.self).split(separator: " ").first, let n = Int(first), n < 1_000_000 { bytes.insert(0x78, at: 0) }
        return bytes + [0x0A]
    }

    @Test func replyParserDeliversEachRequestsEventsInOrderDespiteNoise() throws {
        var rng = Fuzz.rng(#function)
        for iteration in 0..<max(1, Fuzz.iterations / 2) {
            let (mine, guest) = try socketPair()
            defer { guest.close() }
            try mine.setNonBlocking(true)
            let agent = GuestAgent()
            agent.attach(mine)
            func deliver(_ bytes: [UInt8]) throws {
                for chunk in rng.chunks(bytes) { try guest.writeAll(chunk); agent.handleReadable() }
            }
            var noise: [UInt8] = []
            for _ in 0..<rng.below(4) { noise += Self.noise(&rng) }
            try deliver(noise + Array("0 hello labrun-agent 1\n".utf8))
            try #require(agent.isReady, "iteration \(iteration) [\(Fuzz.reproduce)]")

            let count = 1 + rng.below(5)
            var got: [Int: [GuestAgent.Event]] = [:]
            for i in 0..<count {
                agent.exec("cmd \(i)", timeout: 0) { event in
                    got[i, default: []].append(event)
                    if case .exit = event { return true }
                    return false
                }
            }
            // The request lines: "ID exec 0 B64".
            var ids: [Int] = []
            var buffer = LineBuffer()
            try guest.setNonBlocking(false)
            while ids.count < count {
                for line in try buffer.append(try guest.read(upTo: 4096).get()) {
                    let f = String(decoding: line, as: UTF8.self).split(separator: " ")
                    ids.append(Int(f[0])!)
                    #expect(f[1] == "exec")
                }
            }
            var want: [Int: [GuestAgent.Event]] = [:]
            var script: [UInt8] = []
            // Interleave the requests' output lines, each request's in order, noise between.
            var queues: [[(Int, String, GuestAgent.Event)]] = ids.enumerated().map { i, id in
                var q: [(Int, String, GuestAgent.Event)] = []
                for _ in 0..<rng.below(6) {
                    let payload = rng.bytes(rng.below(3000))
                    let err = rng.chance(30)
                    q.append((i, "\(id) \(err ? "err" : "out") \(Data(payload).base64EncodedString())", err ? .stderr(payload) : .stdout(payload)))
                }
                let code = Int32(rng.below(256))
                q.append((i, "\(id) exit \(code)", .exit(code)))
                return q
            }
            while let k = queues.indices.filter({ !queues[$0].isEmpty }).randomElement(using: &rng) {
                let (i, line, event) = queues[k].removeFirst()
                want[i, default: []].append(event)
                script += Array(line.utf8) + [0x0A]
                for _ in 0..<rng.below(2) { script += Self.noise(&rng) }
            }
            try deliver(script)
            for i in 0..<count { #expect(got[i] == want[i], "request \(i) of iteration \(iteration) [\(Fuzz.reproduce)]") }
            #expect(agent.isReady, "noise disconnected the agent [\(Fuzz.reproduce)]")
            agent.close()
        }
    }
}
