/// The image formats Cameo accepts. The type is decided by magic bytes only, never by a file
/// name or a client-declared Content-Type, which are both attacker-controlled.
public enum ImageFormat: String, Sendable, CaseIterable {
    /// JPEG (JFIF/Exif), baseline or progressive.
    case jpeg
    /// PNG, any colour type and bit depth.
    case png
    /// WebP, lossy or lossless, still or animated.
    case webp

    /// The MIME type for this format, as stored in `media_files` and compared with allow-lists.
    public var mimeType: String {
        switch self {
        case .jpeg: "image/jpeg"
        case .png: "image/png"
        case .webp: "image/webp"
        }
    }

    /// The format whose MIME type is `mimeType` (case-insensitive, parameters ignored), so
    /// declared types can be checked against the same three formats the sniffer knows.
    public init?(mimeType: String) {
        let essence = mimeType.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        let trimmed = essence.trimmingSpaces.lowercased()
        switch trimmed {
        case "image/jpeg", "image/jpg", "image/pjpeg": self = .jpeg
        case "image/png": self = .png
        case "image/webp": self = .webp
        default: return nil
        }
    }

    /// Identifies the format from its leading magic bytes, or nil for anything else (GIF, BMP,
    /// SVG, HTML, empty input, ...). Only the signature is checked; decodability is not.
    public static func sniff(_ bytes: [UInt8]) -> ImageFormat? {
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF {
            return .jpeg
        }
        if bytes.count >= 8, bytes[0..<8].elementsEqual(pngSignature) {
            return .png
        }
        if bytes.count >= 12,
           bytes[0..<4].elementsEqual([0x52, 0x49, 0x46, 0x46]),  // "RIFF"
           bytes[8..<12].elementsEqual([0x57, 0x45, 0x42, 0x50])  // "WEBP"
        {
            return .webp
        }
        return nil
    }
}

/// The fixed 8-byte PNG file signature.
let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

extension String {
    /// The string without leading/trailing spaces and tabs; avoids pulling in Foundation.
    fileprivate var trimmingSpaces: String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
