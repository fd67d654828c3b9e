/// The recent screen, replayed to a viewer that attaches: at most `maxLines` lines of output
/// (and notices), bounded in bytes. Guest output is kept in chunks that grow until 16 KiB, so a
/// keystroke's echo adds bytes, not an entry (trimming stays cheap however the output comes).
struct ConsoleHistory {
    private enum Kind { case output, notice }
    private var chunks: [(kind: Kind, bytes: [UInt8], lines: Int)] = []
    private var totalLines = 0
    private var totalBytes = 0
    let maxLines: Int
    let maxBytes: Int
    static let chunkBytes = 16 << 10

    init(maxLines: Int = 100, maxBytes: Int = 256 << 10) {
        self.maxLines = maxLines
        self.maxBytes = maxBytes
    }

    enum Item: Equatable { case output([UInt8]), notice(String) }

    /// What to replay, in order.
    var items: [Item] {
        chunks.map { $0.kind == .output ? .output($0.bytes) : .notice(String(decoding: $0.bytes, as: UTF8.self)) }
    }

    /// The frames to replay.
    var frames: [[UInt8]] {
        chunks.map { $0.kind == .output ? ConsoleMessage.outputFrame($0.bytes) : ConsoleMessage.notice(String(decoding: $0.bytes, as: UTF8.self)).frame }
    }

    mutating func output(_ bytes: [UInt8], lines n: Int) {
        if let last = chunks.last, last.kind == .output, last.bytes.count < Self.chunkBytes {
            chunks[chunks.count - 1].bytes += bytes
            chunks[chunks.count - 1].lines += n
        } else {
            chunks.append((.output, bytes, n))
        }
        added(bytes.count, n)
    }

    /// A labrun notice.
    mutating func notice(_ text: String) {
        let bytes = Array(text.utf8)
        chunks.append((.notice, bytes, 1))
        added(bytes.count, 1)
    }

    private mutating func added(_ bytes: Int, _ lines: Int) {
        totalLines += lines
        totalBytes += bytes
        while chunks.count > 1 && (totalLines - chunks[0].lines >= maxLines || totalBytes > maxBytes) {
            let first = chunks.removeFirst()
            totalLines -= first.lines
            totalBytes -= first.bytes.count
        }
    }
}
