internal import CJPEGShim
internal import CWebP

/// Reads only the header of an image (no pixel buffers are allocated) and checks it against
/// `limits`. JPEG goes through libjpeg's `jpeg_read_header` (in the C shim), PNG through its
/// IHDR chunk, WebP through `WebPGetFeatures`; the EXIF orientation comes from a bounded walk
/// over the container. Throws `dimensionsTooLarge` / `pixelBomb` before anything is decoded,
/// `unsupportedFormat` when the magic bytes are not JPEG/PNG/WebP, `corrupt` for a broken
/// header.
public func readHeader(_ bytes: [UInt8], limits: ImageLimits) throws(ImagingError) -> ImageHeader {
    try probeImage(bytes, limits: limits).header
}

/// Header plus the facts the decoder needs but the public header does not expose.
struct ProbedImage {
    /// The public header.
    var header: ImageHeader
    /// True when the source may carry transparency (alpha channel or PNG tRNS), so the
    /// pipeline keeps four channels and premultiplies while filtering.
    var hasAlpha: Bool
}

/// Sniffs, parses the header and enforces the limits; shared by `readHeader` and the renderer
/// so both apply exactly the same checks.
func probeImage(_ bytes: [UInt8], limits: ImageLimits) throws(ImagingError) -> ProbedImage {
    guard let format = ImageFormat.sniff(bytes) else { throw .unsupportedFormat }
    let probed: ProbedImage
    switch format {
    case .jpeg: probed = try probeJPEG(bytes)
    case .png: probed = try probePNG(bytes)
    case .webp: probed = try probeWebP(bytes)
    }
    try limits.check(width: probed.header.width, height: probed.header.height)
    return probed
}

// MARK: JPEG

private func probeJPEG(_ bytes: [UInt8]) throws(ImagingError) -> ProbedImage {
    var info = cameo_jpeg_info()
    let status = bytes.withUnsafeBufferPointer { buffer in
        cameo_jpeg_read_header(buffer.baseAddress, buffer.count, &info)
    }
    guard status == Int32(CAMEO_JPEG_OK) else {
        throw .corrupt(jpegMessage(&info, fallback: "unreadable JPEG header"))
    }
    let header = ImageHeader(
        format: .jpeg, width: Int(info.width), height: Int(info.height),
        exifOrientation: jpegExifOrientation(bytes), isAnimated: false)
    return ProbedImage(header: header, hasAlpha: false)
}

/// Copies the shim's fixed-size message buffer into a Swift string.
func jpegMessage(_ info: inout cameo_jpeg_info, fallback: String) -> String {
    let text = withUnsafeBytes(of: &info.message) { raw -> String in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
    return text.isEmpty ? fallback : text
}

/// Finds the orientation in the first APP1 "Exif" segment. Walks markers from SOI up to the
/// first SOS; every length is bounds-checked, and the walk gives up (orientation 1) on
/// anything malformed, because a bad EXIF block must not make a decodable photo fail.
func jpegExifOrientation(_ b: [UInt8]) -> Int {
    var i = 2
    // A real file has a handful of segments before SOS; the cap bounds work on junk.
    for _ in 0..<1024 {
        guard i < b.count, b[i] == 0xFF else { return 1 }
        while i < b.count, b[i] == 0xFF { i += 1 }  // fill bytes
        guard i < b.count else { return 1 }
        let marker = b[i]
        i += 1
        if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) { continue }
        if marker == 0xDA || marker == 0xD9 { return 1 }  // entropy data or end: no EXIF
        guard i + 2 <= b.count else { return 1 }
        let length = Int(b[i]) << 8 | Int(b[i + 1])
        guard length >= 2, i + length <= b.count else { return 1 }
        if marker == 0xE1, length >= 8,
           b[(i + 2)..<(i + 8)].elementsEqual([0x45, 0x78, 0x69, 0x66, 0, 0])  // "Exif\0\0"
        {
            return tiffOrientation(b, start: i + 8, end: i + length) ?? 1
        }
        i += length
    }
    return 1
}

/// Reads tag 0x0112 (Orientation) from IFD0 of a TIFF structure in `b[start..<end]`, in either
/// byte order. Returns nil when the structure is malformed or has no orientation tag, and 1 for
/// values outside 1...8.
func tiffOrientation(_ b: [UInt8], start: Int, end: Int) -> Int? {
    guard start >= 0, end <= b.count, end - start >= 8 else { return nil }
    let little: Bool
    switch (b[start], b[start + 1]) {
    case (0x49, 0x49): little = true  // "II"
    case (0x4D, 0x4D): little = false  // "MM"
    default: return nil
    }
    func u16(_ offset: Int) -> Int? {
        let p = start + offset
        guard offset >= 0, p + 2 <= end else { return nil }
        return little ? Int(b[p]) | Int(b[p + 1]) << 8 : Int(b[p]) << 8 | Int(b[p + 1])
    }
    func u32(_ offset: Int) -> Int? {
        guard let lo = u16(little ? offset : offset + 2), let hi = u16(little ? offset + 2 : offset)
        else { return nil }
        return hi << 16 | lo
    }
    guard u16(2) == 42, let ifd = u32(4), ifd >= 8, let count = u16(ifd) else { return nil }
    // The entry count is bounded by the bytes actually present (12 bytes per entry).
    let available = (end - start - ifd - 2) / 12
    for n in 0..<min(count, max(available, 0)) {
        let entry = ifd + 2 + n * 12
        guard u16(entry) == 0x0112, let type = u16(entry + 2) else { continue }
        let value: Int?
        switch type {
        case 3: value = u16(entry + 8)  // SHORT, left-justified in the value field
        case 4: value = u32(entry + 8)  // LONG, seen from a few sloppy writers
        default: value = nil
        }
        guard let value else { return 1 }
        return (1...8).contains(value) ? value : 1
    }
    return nil
}

// MARK: PNG

private func probePNG(_ b: [UInt8]) throws(ImagingError) -> ProbedImage {
    // Signature (8) + IHDR length/type (8) + IHDR data (13) + CRC (4).
    guard b.count >= 33, be32(b, 8) == 13, b[12..<16].elementsEqual(Array("IHDR".utf8)) else {
        throw .corrupt("PNG does not start with an IHDR chunk")
    }
    guard crc32(b[12..<29]) == be32(b, 29) else {
        throw .corrupt("PNG IHDR CRC mismatch")
    }
    let width = be32(b, 16)
    let height = be32(b, 20)
    // PNG caps sides at 2^31 - 1; bigger values are corrupt, not merely too large.
    guard width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF else {
        throw .corrupt("PNG dimensions out of range")
    }
    let colorType = b[25]
    var hasAlpha = colorType == 4 || colorType == 6
    var animated = false
    var orientation = 1
    // Ancillary chunks before the first IDAT: acTL (APNG), tRNS (transparency), eXIf.
    var pos = 33
    for _ in 0..<4096 {
        guard pos + 12 <= b.count else { break }
        let length = be32(b, pos)
        guard length <= b.count - pos - 12 else { break }
        let type = b[(pos + 4)..<(pos + 8)]
        if type.elementsEqual(Array("IDAT".utf8)) || type.elementsEqual(Array("IEND".utf8)) {
            break
        } else if type.elementsEqual(Array("acTL".utf8)) {
            animated = true
        } else if type.elementsEqual(Array("tRNS".utf8)) {
            hasAlpha = true
        } else if type.elementsEqual(Array("eXIf".utf8)) {
            orientation = tiffOrientation(b, start: pos + 8, end: pos + 8 + length) ?? 1
        }
        pos += 12 + length
    }
    let header = ImageHeader(
        format: .png, width: width, height: height, exifOrientation: orientation,
        isAnimated: animated)
    return ProbedImage(header: header, hasAlpha: hasAlpha)
}

/// Big-endian 32-bit read; callers have checked bounds.
private func be32(_ b: [UInt8], _ i: Int) -> Int {
    Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
}

/// CRC-32 (ISO-HDLC, as PNG uses) lookup table.
private let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

/// CRC-32 of `bytes`; used only for the 17 bytes of IHDR, so a table walk is plenty.
func crc32<C: Collection<UInt8>>(_ bytes: C) -> Int {
    var c: UInt32 = 0xFFFF_FFFF
    for byte in bytes { c = crcTable[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
    return Int(c ^ 0xFFFF_FFFF)
}

// MARK: WebP

private func probeWebP(_ b: [UInt8]) throws(ImagingError) -> ProbedImage {
    var features = WebPBitstreamFeatures()
    let status = b.withUnsafeBufferPointer { WebPGetFeatures($0.baseAddress, $0.count, &features) }
    guard status == VP8_STATUS_OK else {
        throw .corrupt("WebP header unreadable (status \(status.rawValue))")
    }
    let header = ImageHeader(
        format: .webp, width: Int(features.width), height: Int(features.height),
        exifOrientation: webpExifOrientation(b), isAnimated: features.has_animation != 0)
    return ProbedImage(header: header, hasAlpha: features.has_alpha != 0 || features.has_animation != 0)
}

/// Orientation from a WebP EXIF chunk (extended format only). Some writers keep the JPEG-style
/// "Exif\0\0" prefix inside the chunk, so both forms are accepted.
private func webpExifOrientation(_ b: [UInt8]) -> Int {
    var pos = 12
    for _ in 0..<256 {
        guard pos + 8 <= b.count else { return 1 }
        let size = Int(b[pos + 4]) | Int(b[pos + 5]) << 8 | Int(b[pos + 6]) << 16 | Int(b[pos + 7]) << 24
        guard size <= b.count - pos - 8 else { return 1 }
        if b[pos..<(pos + 4)].elementsEqual(Array("EXIF".utf8)) {
            var start = pos + 8
            if size >= 6, b[start..<(start + 6)].elementsEqual([0x45, 0x78, 0x69, 0x66, 0, 0]) {
                start += 6
            }
            return tiffOrientation(b, start: start, end: pos + 8 + size) ?? 1
        }
        pos += 8 + size + (size & 1)  // chunks are padded to even length
    }
    return 1
}
