import FoundationEssentials

/// One image as `qemu-img info --output=json` describes it. Unknown keys are ignored.
public struct ImageInfo: Codable, Equatable, Sendable {
    /// The path as qemu-img opened it: as given for the top layer, and the previous layer's
    /// `fullBackingFilename` for the layers below.
    public var filename: String
    /// "qcow2", "raw", …
    public var format: String
    public var virtualSize: UInt64
    /// Bytes allocated on the host.
    public var actualSize: UInt64?
    /// The backing path exactly as stored in the image (may be relative to the image's directory).
    public var backingFilename: String?
    /// The backing path as qemu-img resolved it (relative to the current directory or absolute).
    public var fullBackingFilename: String?
    public var backingFilenameFormat: String?
    public var dirtyFlag: Bool?
    public var clusterSize: UInt64?
    /// Internal snapshots, oldest first; empty for formats without them.
    public var snapshots: [SnapshotInfo]
    /// qcow2's corrupt bit (`format-specific.data.corrupt`): QEMU refuses to write such an image.
    public var corrupt: Bool?

    public init(filename: String, format: String, virtualSize: UInt64, actualSize: UInt64? = nil,
                backingFilename: String? = nil, fullBackingFilename: String? = nil, backingFilenameFormat: String? = nil,
                dirtyFlag: Bool? = nil, clusterSize: UInt64? = nil, snapshots: [SnapshotInfo] = [], corrupt: Bool? = nil) {
        self.filename = filename
        self.format = format
        self.virtualSize = virtualSize
        self.actualSize = actualSize
        self.backingFilename = backingFilename
        self.fullBackingFilename = fullBackingFilename
        self.backingFilenameFormat = backingFilenameFormat
        self.dirtyFlag = dirtyFlag
        self.clusterSize = clusterSize
        self.snapshots = snapshots
        self.corrupt = corrupt
    }

    /// The backing path qemu-img actually opened, when the image has a backing file.
    public var resolvedBackingFilename: String? { fullBackingFilename ?? backingFilename }

    enum CodingKeys: String, CodingKey {
        case filename, format, snapshots
        case virtualSize = "virtual-size"
        case actualSize = "actual-size"
        case backingFilename = "backing-filename"
        case fullBackingFilename = "full-backing-filename"
        case backingFilenameFormat = "backing-filename-format"
        case dirtyFlag = "dirty-flag"
        case clusterSize = "cluster-size"
        case formatSpecific = "format-specific"
    }

    private struct FormatSpecific: Codable {
        struct Data: Codable { var corrupt: Bool? }
        var type: String?
        var data: Data?
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        filename = try c.decode(String.self, forKey: .filename)
        format = try c.decode(String.self, forKey: .format)
        virtualSize = try c.decode(UInt64.self, forKey: .virtualSize)
        actualSize = try c.decodeIfPresent(UInt64.self, forKey: .actualSize)
        backingFilename = try c.decodeIfPresent(String.self, forKey: .backingFilename)
        fullBackingFilename = try c.decodeIfPresent(String.self, forKey: .fullBackingFilename)
        backingFilenameFormat = try c.decodeIfPresent(String.self, forKey: .backingFilenameFormat)
        dirtyFlag = try c.decodeIfPresent(Bool.self, forKey: .dirtyFlag)
        clusterSize = try c.decodeIfPresent(UInt64.self, forKey: .clusterSize)
        snapshots = try c.decodeIfPresent([SnapshotInfo].self, forKey: .snapshots) ?? []
        corrupt = try c.decodeIfPresent(FormatSpecific.self, forKey: .formatSpecific)?.data?.corrupt
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(filename, forKey: .filename)
        try c.encode(format, forKey: .format)
        try c.encode(virtualSize, forKey: .virtualSize)
        try c.encodeIfPresent(actualSize, forKey: .actualSize)
        try c.encodeIfPresent(backingFilename, forKey: .backingFilename)
        try c.encodeIfPresent(fullBackingFilename, forKey: .fullBackingFilename)
        try c.encodeIfPresent(backingFilenameFormat, forKey: .backingFilenameFormat)
        try c.encodeIfPresent(dirtyFlag, forKey: .dirtyFlag)
        try c.encodeIfPresent(clusterSize, forKey: .clusterSize)
        if !snapshots.isEmpty { try c.encode(snapshots, forKey: .snapshots) }
        if let corrupt {
            try c.encode(FormatSpecific(type: format, data: .init(corrupt: corrupt)), forKey: .formatSpecific)
        }
    }

    /// Decodes `qemu-img info --output=json` output: one object, or an array with `--backing-chain`.
    public static func decode(_ json: [UInt8]) throws(LabrunError) -> [ImageInfo] {
        let data = Data(json)
        let isArray = json.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) } == UInt8(ascii: "[")
        do {
            if isArray { return try JSONDecoder().decode([ImageInfo].self, from: data) }
            return [try JSONDecoder().decode(ImageInfo.self, from: data)]
        } catch {
            throw LabrunError("cannot read qemu-img info output: \(error)")
        }
    }
}

/// A backing chain, top layer first (the image that is opened) down to the bottom layer
/// (the one without a backing file).
public struct ImageChain: Equatable, Sendable {
    /// Top → bottom; never empty.
    public let layers: [ImageInfo]

    /// Wraps the layers of `qemu-img info --backing-chain`, top first; refuses an empty list.
    public init(_ layers: [ImageInfo]) throws(LabrunError) {
        guard !layers.isEmpty else { throw LabrunError("qemu-img reported no image layers") }
        self.layers = layers
    }

    public var top: ImageInfo { layers[0] }
    public var bottom: ImageInfo { layers[layers.count - 1] }
    /// Every path in the chain as qemu-img opened it, top first (what the lock probe checks).
    public var filenames: [String] { layers.map(\.filename) }

    /// Checks that each layer's backing file and format are the next layer and that the bottom
    /// layer has no backing file; throws a one-line description of the first mismatch.
    public func validate() throws(LabrunError) {
        for (upper, lower) in zip(layers, layers.dropFirst()) {
            guard let backing = upper.resolvedBackingFilename else {
                throw LabrunError("\(upper.filename) has no backing file, but qemu-img listed \(lower.filename) below it")
            }
            if backing != lower.filename {
                throw LabrunError("\(upper.filename) is backed by \(backing), but the next layer is \(lower.filename)")
            }
            if let wanted = upper.backingFilenameFormat, wanted != lower.format {
                throw LabrunError("\(upper.filename) expects its backing file \(lower.filename) in \(wanted) format, but it is \(lower.format)")
            }
        }
        if let backing = bottom.resolvedBackingFilename {
            throw LabrunError("\(bottom.filename) is backed by \(backing), which qemu-img did not list; is it missing?")
        }
    }
}
