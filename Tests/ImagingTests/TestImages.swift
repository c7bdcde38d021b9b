@testable import Imaging

// Builders for test inputs. Everything is generated in code (no binary fixtures): pixel
// patterns are encoded with the module's own test-only encoders, and containers that no
// encoder here writes (crafted PNG headers, EXIF APP1, animated WebP) are assembled by hand.

/// An RGB colour used to paint and check test images.
struct RGB: Equatable, CustomStringConvertible {
    /// Channels, 0...255.
    var r: UInt8, g: UInt8, b: UInt8
    /// Saturated but not extreme colours, so codec overshoot cannot clip and hide errors.
    static let red = RGB(r: 230, g: 20, b: 20)
    /// See `red`.
    static let green = RGB(r: 20, g: 200, b: 40)
    /// See `red`.
    static let blue = RGB(r: 20, g: 40, b: 220)
    /// See `red`.
    static let yellow = RGB(r: 240, g: 230, b: 30)
    /// Background for marker tests.
    static let gray = RGB(r: 128, g: 128, b: 128)
    /// "(r,g,b)" for failure messages.
    var description: String { "(\(r),\(g),\(b))" }
}

/// A raster filled by `paint(x, y)`.
func makeRaster(width: Int, height: Int, alpha: Bool = false, _ paint: (Int, Int) -> (RGB, UInt8))
    -> Raster
{
    let c = alpha ? 4 : 3
    var px = [UInt8](repeating: 0, count: width * height * c)
    for y in 0..<height {
        for x in 0..<width {
            let (rgb, a) = paint(x, y)
            let i = (y * width + x) * c
            px[i] = rgb.r; px[i + 1] = rgb.g; px[i + 2] = rgb.b
            if alpha { px[i + 3] = a }
        }
    }
    return Raster(width: width, height: height, channels: c, pixels: px)
}

/// A smooth colour gradient: realistic enough for the codecs, cheap to generate.
func gradient(width: Int, height: Int) -> Raster {
    makeRaster(width: width, height: height) { x, y in
        (RGB(r: UInt8(x * 255 / max(width - 1, 1)), g: UInt8(y * 255 / max(height - 1, 1)),
             b: UInt8((x + y) * 127 / max(width + height - 2, 1))), 255)
    }
}

/// Stored image split into four solid quadrants: red TL, green TR, blue BL, yellow BR.
func quadrants(width: Int, height: Int) -> Raster {
    makeRaster(width: width, height: height) { x, y in
        let left = x < width / 2, top = y < height / 2
        return (top ? (left ? .red : .green) : (left ? .blue : .yellow), 255)
    }
}

/// Encodes an RGB raster as a baseline JPEG at high quality.
func jpeg(_ raster: Raster, progressive: Bool = false) throws -> [UInt8] {
    try encodeJPEGForTesting(
        raster.pixels, width: raster.width, height: raster.height, components: 3, quality: 95,
        progressive: progressive)
}

/// Pixel at (x, y) of a decoded raster as RGB plus alpha (255 when opaque).
func pixel(_ r: Raster, _ x: Int, _ y: Int) -> (RGB, UInt8) {
    let i = (y * r.width + x) * r.channels
    let p = r.pixels
    return (RGB(r: p[i], g: p[i + 1], b: p[i + 2]), r.channels == 4 ? p[i + 3] : 255)
}

/// True when every channel of `a` is within `tolerance` of `b`.
func close(_ a: RGB, _ b: RGB, tolerance: Int = 40) -> Bool {
    abs(Int(a.r) - Int(b.r)) <= tolerance && abs(Int(a.g) - Int(b.g)) <= tolerance
        && abs(Int(a.b) - Int(b.b)) <= tolerance
}

// MARK: Containers built by hand

/// Big-endian UInt32 bytes.
func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
/// Little-endian UInt32 bytes.
func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
/// Little-endian 24-bit bytes (WebP ANIM/ANMF fields).
func le24(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF)] }

/// The test's own CRC-32 (bitwise, independent of the module's table version).
func testCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

/// A PNG chunk with a correct CRC (unless `breakCRC`).
func pngChunk(_ type: String, _ data: [UInt8], breakCRC: Bool = false) -> [UInt8] {
    let typeBytes = Array(type.utf8)
    var crc = testCRC32(typeBytes + data)
    if breakCRC { crc ^= 1 }
    return be32(data.count) + typeBytes + data + be32(Int(crc))
}

/// A tiny PNG whose IHDR claims `width` × `height` (8-bit RGB) with no pixel data behind it:
/// only a reader that trusts the header before decoding can answer correctly.
func craftedPNGHeader(width: Int, height: Int, breakCRC: Bool = false) -> [UInt8] {
    let ihdr = be32(width) + be32(height) + [8, 2, 0, 0, 0]
    return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        + pngChunk("IHDR", ihdr, breakCRC: breakCRC) + pngChunk("IEND", [])
}

/// An APP1 Exif segment whose IFD0 holds only Orientation, in either TIFF byte order.
func exifAPP1(orientation: Int, littleEndian: Bool) -> [UInt8] {
    func u16(_ v: Int) -> [UInt8] { littleEndian ? [UInt8(v & 0xFF), UInt8(v >> 8)] : [UInt8(v >> 8), UInt8(v & 0xFF)] }
    func u32(_ v: Int) -> [UInt8] { littleEndian ? le32(v) : be32(v) }
    var tiff: [UInt8] = littleEndian ? [0x49, 0x49] : [0x4D, 0x4D]
    tiff += u16(42) + u32(8)  // magic, IFD0 right after the header
    tiff += u16(1)  // one entry
    tiff += u16(0x0112) + u16(3) + u32(1) + u16(orientation) + [0, 0]  // SHORT, left-justified
    tiff += u32(0)  // no next IFD
    let payload: [UInt8] = Array("Exif".utf8) + [0, 0] + tiff
    let length = payload.count + 2
    return [0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + payload
}

/// `jpeg` with an APP1 segment inserted right after SOI, as cameras write it.
func withAPP1(_ jpeg: [UInt8], _ app1: [UInt8]) -> [UInt8] {
    Array(jpeg[0..<2]) + app1 + Array(jpeg[2...])
}

/// A two-frame animated WebP on a `canvas`² canvas; the first frame is `first` (a still WebP
/// file) placed at (`offset`, `offset`), the second a full-canvas still. Offsets must be even.
func animatedWebP(canvas: Int, first: [UInt8], offset: Int, firstSize: Int, second: [UInt8]) -> [UInt8] {
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        Array(type.utf8) + le32(data.count) + data + (data.count % 2 == 1 ? [0] : [])
    }
    // The payload of a simple-format still is everything after "RIFF" size "WEBP".
    let firstPayload = Array(first[12...])
    let secondPayload = Array(second[12...])
    let vp8x = chunk("VP8X", [0x12, 0, 0, 0] + le24(canvas - 1) + le24(canvas - 1))  // animation + alpha
    let anim = chunk("ANIM", [0, 0, 0, 0, 0, 0])  // transparent background, loop forever
    let frame1 = chunk("ANMF", le24(offset / 2) + le24(offset / 2) + le24(firstSize - 1) + le24(firstSize - 1)
        + le24(100) + [0x02] + firstPayload)  // no blending
    let frame2 = chunk("ANMF", le24(0) + le24(0) + le24(canvas - 1) + le24(canvas - 1)
        + le24(100) + [0x02] + secondPayload)
    let body = Array("WEBP".utf8) + vp8x + anim + frame1 + frame2
    return Array("RIFF".utf8) + le32(body.count) + body
}
