import Testing

@testable import Imaging

/// Type detection and header checks: everything that must be decided before any pixel is
/// allocated.
@Suite("Sniffing and headers")
struct HeaderTests {
    /// The spec defaults (2048 px per side, 4.2 MP).
    let limits = ImageLimits()

    @Test("real JPEG, PNG and WebP files are sniffed by their magic bytes")
    func sniffPositive() throws {
        let image = gradient(width: 16, height: 16)
        #expect(ImageFormat.sniff(try jpeg(image)) == .jpeg)
        #expect(ImageFormat.sniff(try encodePNGForTesting(image)) == .png)
        #expect(ImageFormat.sniff(try encodeWebP(image, quality: 80, method: 0)) == .webp)
        #expect(ImageFormat.jpeg.mimeType == "image/jpeg")
        #expect(ImageFormat.png.mimeType == "image/png")
        #expect(ImageFormat.webp.mimeType == "image/webp")
        #expect(ImageFormat(mimeType: "Image/PNG; charset=x") == .png)
        #expect(ImageFormat(mimeType: "image/gif") == nil)
    }

    @Test(
        "non-images and other formats are not sniffed",
        arguments: [
            Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8),
            Array("BM\u{36}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}".utf8),
            Array("<svg xmlns=\"http://www.w3.org/2000/svg\"/>".utf8),
            Array("<html><body>hi</body></html>".utf8),
            [],
            [0xFF, 0xD8],  // JPEG SOI without a marker after it
            Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVEfmt ".utf8),  // RIFF but not WebP
            [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A],  // PNG signature cut short
        ] as [[UInt8]])
    func sniffNegative(bytes: [UInt8]) throws {
        #expect(ImageFormat.sniff(bytes) == nil)
        #expect(throws: ImagingError.unsupportedFormat) { try readHeader(bytes, limits: limits) }
    }

    @Test("a 60000x60000 IHDR is rejected from the header alone")
    func hugeDimensions() throws {
        let png = craftedPNGHeader(width: 60_000, height: 60_000)
        #expect(png.count < 64)
        #expect(throws: ImagingError.dimensionsTooLarge(width: 60_000, height: 60_000, maxSide: 2048)) {
            try readHeader(png, limits: limits)
        }
        // The renderer applies the same check before decoding anything.
        #expect(throws: ImagingError.dimensionsTooLarge(width: 60_000, height: 60_000, maxSide: 2048)) {
            try AvatarRenderer(limits: limits).render(png, crop: nil)
        }
    }

    @Test("a JPEG whose SOF claims 60000x40000 is rejected before decoding")
    func hugeJPEGHeader() throws {
        var bytes = try jpeg(gradient(width: 16, height: 16))
        // Patch the baseline SOF0 segment: FF C0, length (2), precision (1), height, width.
        let sof = try #require(bytes.indices.dropLast().first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        bytes.replaceSubrange((sof + 5)..<(sof + 9), with: [0xEA, 0x60, 0x9C, 0x40])  // 60000, 40000
        #expect(throws: ImagingError.dimensionsTooLarge(width: 40_000, height: 60_000, maxSide: 2048)) {
            try readHeader(bytes, limits: limits)
        }
        #expect(throws: ImagingError.dimensionsTooLarge(width: 40_000, height: 60_000, maxSide: 2048)) {
            try AvatarRenderer(limits: limits).render(bytes, crop: nil)
        }
    }

    @Test("a broken IHDR CRC is corrupt, not trusted")
    func brokenIHDRCRC() {
        let png = craftedPNGHeader(width: 100, height: 100, breakCRC: true)
        #expect(throws: ImagingError.corrupt("PNG IHDR CRC mismatch")) { try readHeader(png, limits: limits) }
    }

    @Test("a pixel bomb within the per-side limit is rejected by pixel count")
    func pixelBomb() throws {
        let png = craftedPNGHeader(width: 2000, height: 2000)
        let tight = ImageLimits(maxSide: 4096, maxPixels: 1_000_000)
        #expect(throws: ImagingError.pixelBomb(pixels: 4_000_000, maxPixels: 1_000_000)) {
            try readHeader(png, limits: tight)
        }
        // Per-side is reported first when both are broken.
        #expect(throws: ImagingError.dimensionsTooLarge(width: 5000, height: 10, maxSide: 4096)) {
            try readHeader(craftedPNGHeader(width: 5000, height: 10), limits: tight)
        }
        let header = try readHeader(craftedPNGHeader(width: 1000, height: 1000), limits: tight)
        #expect(header.width == 1000 && header.height == 1000 && header.format == .png)
    }

    @Test("JPEG and WebP headers report size, and a WebP pixel bomb is caught too")
    func jpegAndWebPHeaders() throws {
        let image = gradient(width: 40, height: 24)
        let j = try readHeader(try jpeg(image, progressive: true), limits: limits)
        #expect(j == ImageHeader(format: .jpeg, width: 40, height: 24, exifOrientation: 1, isAnimated: false))
        let w = try readHeader(try encodeWebP(image, quality: 80, method: 0), limits: limits)
        #expect(w == ImageHeader(format: .webp, width: 40, height: 24, exifOrientation: 1, isAnimated: false))
        #expect(throws: ImagingError.pixelBomb(pixels: 960, maxPixels: 500)) {
            try readHeader(try encodeWebP(image, quality: 80, method: 0), limits: ImageLimits(maxSide: 100, maxPixels: 500))
        }
    }

    @Test("EXIF orientation is read from APP1 in both byte orders", arguments: [
        (1, true), (3, false), (6, false), (8, true), (5, true), (7, false),
    ])
    func exifOrientation(value: Int, littleEndian: Bool) throws {
        let base = try jpeg(gradient(width: 16, height: 8))
        let header = try readHeader(withAPP1(base, exifAPP1(orientation: value, littleEndian: littleEndian)), limits: limits)
        #expect(header.exifOrientation == value)
        #expect(header.orientedWidth == (value >= 5 ? 8 : 16))
    }

    @Test("invalid or garbled EXIF falls back to orientation 1 without failing")
    func garbledExif() throws {
        let base = try jpeg(gradient(width: 16, height: 8))
        #expect(try readHeader(withAPP1(base, exifAPP1(orientation: 9, littleEndian: true)), limits: limits).exifOrientation == 1)
        var broken = exifAPP1(orientation: 6, littleEndian: false)
        broken[14] = 0x00  // IFD0 offset high byte -> points far outside the segment
        broken[15] = 0x7F
        #expect(try readHeader(withAPP1(base, broken), limits: limits).exifOrientation == 1)
    }

    @Test("truncated files are corrupt")
    func truncated() throws {
        let image = gradient(width: 64, height: 64)
        let renderer = AvatarRenderer(limits: limits, sizes: [64])
        for (name, bytes) in [("jpeg", try jpeg(image)), ("progressive", try jpeg(image, progressive: true)),
                              ("png", try encodePNGForTesting(image)),
                              ("webp", try encodeWebP(image, quality: 80, method: 0))] {
            let cut = Array(bytes[0..<(bytes.count * 6 / 10)])
            do {
                _ = try renderer.render(cut, crop: nil)
                Issue.record("\(name): truncated file rendered")
            } catch {
                guard case .corrupt = error else {
                    Issue.record("\(name): expected corrupt, got \(error)")
                    continue
                }
            }
        }
        // A JPEG cut inside its header fails already at readHeader.
        let headerCut = Array(try jpeg(image)[0..<100])
        #expect {
            try readHeader(headerCut, limits: limits)
        } throws: { error in
            if case .corrupt = error as? ImagingError { true } else { false }
        }
    }
}
