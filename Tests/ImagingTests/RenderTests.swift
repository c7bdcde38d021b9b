import Testing

@testable import Imaging

/// The full pipeline, checked by decoding the produced WebPs and looking at their pixels.
@Suite("Rendering")
struct RenderTests {
    /// Default sizes (512, 256, 128, 64), quality and method.
    let renderer = AvatarRenderer(limits: ImageLimits())

    /// Decodes every rendition and checks it is a WebP of the promised size.
    func decodeAll(_ r: AvatarRenditions) throws -> [Int: Raster] {
        var out: [Int: Raster] = [:]
        for (size, bytes) in r.webp {
            #expect(ImageFormat.sniff(bytes) == .webp)
            let raster = try decodeForTesting(bytes)
            #expect(raster.width == size && raster.height == size)
            out[size] = raster
        }
        return out
    }

    @Test("a JPEG renders to 512, 256, 128 and 64 px WebPs")
    func rendersAllSizes() throws {
        let source = try jpeg(gradient(width: 900, height: 600))
        let result = try renderer.render(source, crop: nil)
        #expect(result.sourceWidth == 900 && result.sourceHeight == 600 && result.format == .jpeg)
        #expect(Set(result.webp.keys) == [512, 256, 128, 64])
        let decoded = try decodeAll(result)
        // No metadata is written: a simple-format lossy file is RIFF + "VP8 " only.
        let small = result.webp[64]!
        #expect(Array(small[12..<16]) == Array("VP8 ".utf8))
        // Centred crop of a horizontal gradient: the middle column is mid-red in every size.
        for (size, raster) in decoded {
            let (mid, _) = pixel(raster, size / 2, size / 2)
            #expect(abs(Int(mid.r) - 128) < 20, "size \(size): \(mid)")
        }
    }

    @Test("small sources are upscaled, and every size comes from real pixels")
    func smallSource() throws {
        let source = try encodePNGForTesting(quadrants(width: 40, height: 30))
        let decoded = try decodeAll(try renderer.render(source, crop: nil))
        for (size, raster) in decoded {
            let q = size / 4
            #expect(close(pixel(raster, q, q).0, .red), "size \(size)")
            #expect(close(pixel(raster, size - q, size - q).0, .yellow), "size \(size)")
        }
    }

    @Test("the crop rectangle selects exactly the marked area")
    func cropMarker() throws {
        // Gray 300x200 with a 20x20 red marker at (200, 50); crop (190, 40, 40) puts the marker
        // in the middle half of the output, with a 10 px gray border on each side.
        let image = makeRaster(width: 300, height: 200) { x, y in
            ((200..<220).contains(x) && (50..<70).contains(y) ? .red : .gray, 255)
        }
        let source = try encodePNGForTesting(image)
        let result = try renderer.render(source, crop: CropRect(x: 190, y: 40, size: 40))
        let r = try decodeAll(result)[512]!
        #expect(close(pixel(r, 256, 256).0, .red))
        #expect(close(pixel(r, 140, 140).0, .red))  // marker spans 128..<384
        #expect(close(pixel(r, 370, 370).0, .red))
        #expect(close(pixel(r, 40, 256).0, .gray))
        #expect(close(pixel(r, 256, 470).0, .gray))
        #expect(close(pixel(r, 470, 40).0, .gray))

        // Without a crop the centred square (50, 0, 200) holds the marker at x 150..<170 of 200.
        let centred = try decodeAll(try renderer.render(source, crop: nil))[512]!
        #expect(close(pixel(centred, 160 * 512 / 200, 60 * 512 / 200).0, .red))
        #expect(close(pixel(centred, 100, 100).0, .gray))
    }

    @Test("crop rectangles outside the oriented image are rejected", arguments: [
        CropRect(x: -1, y: 0, size: 10), CropRect(x: 0, y: -5, size: 10), CropRect(x: 0, y: 0, size: 0),
        CropRect(x: 0, y: 0, size: -3), CropRect(x: 291, y: 0, size: 10), CropRect(x: 0, y: 191, size: 10),
        CropRect(x: 0, y: 0, size: 201), CropRect(x: Int.max, y: 0, size: Int.max),
    ])
    func badCrops(crop: CropRect) throws {
        let source = try encodePNGForTesting(gradient(width: 300, height: 200))
        do {
            _ = try renderer.render(source, crop: crop)
            Issue.record("crop \(crop) accepted")
        } catch {
            guard case .badCrop = error else {
                Issue.record("expected badCrop, got \(error)")
                return
            }
        }
    }

    /// Expected displayed colours (TL, TR, BL, BR) of `quadrants(...)` after each orientation.
    static let orientedQuadrants: [Int: [RGB]] = [
        6: [.blue, .red, .yellow, .green],  // rotate 90° clockwise
        8: [.green, .yellow, .red, .blue],  // rotate 90° counter-clockwise
        3: [.yellow, .blue, .green, .red],  // rotate 180°
        2: [.green, .red, .yellow, .blue],  // mirror
    ]

    @Test("EXIF orientation is applied before the crop", arguments: [(6, false), (8, true), (3, true), (2, false)])
    func exifOrientation(orientation: Int, littleEndian: Bool) throws {
        // Stored 120x80 landscape; with 6/8 it displays as 80x120 portrait.
        let stored = try jpeg(quadrants(width: 120, height: 80))
        let source = withAPP1(stored, exifAPP1(orientation: orientation, littleEndian: littleEndian))
        let header = try readHeader(source, limits: ImageLimits())
        #expect(header.exifOrientation == orientation)
        let expected = Self.orientedQuadrants[orientation]!

        let r = try decodeAll(try renderer.render(source, crop: nil))[512]!
        let got = [pixel(r, 128, 128).0, pixel(r, 384, 128).0, pixel(r, 128, 384).0, pixel(r, 384, 384).0]
        for (g, e) in zip(got, expected) { #expect(close(g, e), "orientation \(orientation): \(got)") }

        // A crop of the displayed top-left 40 px is entirely the displayed top-left quadrant.
        let corner = try decodeAll(try renderer.render(source, crop: CropRect(x: 0, y: 0, size: 40)))[64]!
        #expect(close(pixel(corner, 32, 32).0, expected[0]))
        #expect(close(pixel(corner, 5, 58).0, expected[0]))

        // The crop is validated against the oriented size: y 70 + 40 fits 120 tall only when
        // the sides are swapped.
        let tall = CropRect(x: 0, y: 70, size: 40)
        if orientation >= 5 {
            _ = try renderer.render(source, crop: tall)
        } else {
            #expect(throws: ImagingError.self) { try renderer.render(source, crop: tall) }
        }
    }

    @Test("alpha survives PNG -> WebP, including partial transparency")
    func alphaPreserved() throws {
        let image = makeRaster(width: 64, height: 64, alpha: true) { x, y in
            if x < 32 { return (.red, 0) }  // fully transparent (colour must not bleed)
            return (.green, y < 32 ? 255 : 128)
        }
        let source = try encodePNGForTesting(image)
        #expect(try readHeader(source, limits: ImageLimits()).format == .png)
        let r = try decodeAll(try renderer.render(source, crop: nil))[512]!
        #expect(r.channels == 4)
        #expect(pixel(r, 60, 256).1 < 8)
        let (opaque, opaqueAlpha) = pixel(r, 450, 100)
        #expect(opaqueAlpha > 247 && close(opaque, .green))
        let (half, halfAlpha) = pixel(r, 450, 450)
        #expect(abs(Int(halfAlpha) - 128) < 10 && close(half, .green))
        // Premultiplied filtering: across the edge the colour of the transparent pixels (red)
        // must not bleed into the partly visible ones, which stay green.
        var checked = 0
        for x in stride(from: 244, through: 268, by: 4) {
            let (edge, edgeAlpha) = pixel(r, x, 100)
            guard edgeAlpha > 24 else { continue }
            checked += 1
            #expect(close(edge, .green, tolerance: 50), "x \(x): \(edge) a=\(edgeAlpha)")
        }
        #expect(checked >= 4)
    }

    @Test("opaque sources produce WebPs without alpha")
    func opaqueHasNoAlpha() throws {
        let result = try renderer.render(try jpeg(gradient(width: 100, height: 100)), crop: nil)
        let header = try readHeader(result.webp[512]!, limits: ImageLimits())
        #expect(header.width == 512)
        #expect(try decodeForTesting(result.webp[512]!).channels == 3)
    }

    @Test("grayscale, progressive and Adobe CMYK JPEGs decode to the right colours")
    func jpegVariants() throws {
        let gray = try encodeJPEGForTesting(
            [UInt8](repeating: 200, count: 32 * 32), width: 32, height: 32, components: 1)
        let g = try decodeForTesting(gray)
        #expect(g.channels == 3 && close(pixel(g, 10, 10).0, RGB(r: 200, g: 200, b: 200), tolerance: 2))

        let progressive = try jpeg(quadrants(width: 64, height: 64), progressive: true)
        let p = try decodeForTesting(progressive)
        #expect(close(pixel(p, 10, 10).0, .red, tolerance: 12) && close(pixel(p, 50, 50).0, .yellow, tolerance: 12))

        // Photoshop-style CMYK stores inverted ink: pure red (M=Y=100%, C=K=0) is stored as
        // (255, 0, 0, 255); blue (C=M=100%) as (0, 0, 255, 255).
        var cmyk: [UInt8] = []
        for y in 0..<32 {
            for _ in 0..<32 { cmyk += y < 16 ? [255, 0, 0, 255] : [0, 0, 255, 255] }
        }
        let adobe = try encodeJPEGForTesting(cmyk, width: 32, height: 32, components: 4)
        let c = try decodeForTesting(adobe)
        #expect(close(pixel(c, 16, 4).0, RGB(r: 255, g: 0, b: 0), tolerance: 12), "\(pixel(c, 16, 4).0)")
        #expect(close(pixel(c, 16, 28).0, RGB(r: 0, g: 0, b: 255), tolerance: 12), "\(pixel(c, 16, 28).0)")
        // And the CMYK file goes through the whole pipeline.
        _ = try renderer.render(adobe, crop: nil)
    }

    @Test("WebP sources with and without alpha render")
    func webpSources() throws {
        let opaque = try encodeWebP(quadrants(width: 80, height: 80), quality: 90, method: 0)
        let o = try decodeAll(try renderer.render(opaque, crop: nil))[128]!
        #expect(close(pixel(o, 20, 20).0, .red))
        let transparent = makeRaster(width: 40, height: 40, alpha: true) { x, _ in (.blue, x < 20 ? 0 : 255) }
        let t = try decodeAll(try renderer.render(try encodeWebP(transparent, quality: 90, method: 0), crop: nil))[128]!
        #expect(t.channels == 4 && pixel(t, 10, 64).1 < 8 && pixel(t, 118, 64).1 > 247)
    }

    @Test("animated WebP renders its first frame on a transparent canvas")
    func animatedFirstFrame() throws {
        let red = makeRaster(width: 32, height: 32) { _, _ in (.red, 255) }
        let green = makeRaster(width: 64, height: 64) { _, _ in (.green, 255) }
        let file = animatedWebP(
            canvas: 64, first: try encodeWebP(red, quality: 90, method: 0), offset: 16, firstSize: 32,
            second: try encodeWebP(green, quality: 90, method: 0))
        let header = try readHeader(file, limits: ImageLimits())
        #expect(header.isAnimated && header.width == 64 && header.height == 64)
        let r = try decodeAll(try renderer.render(file, crop: nil))[512]!
        #expect(close(pixel(r, 256, 256).0, .red) && pixel(r, 256, 256).1 > 247)
        #expect(pixel(r, 20, 20).1 < 8)
    }

    @Test("resampling is a real low-pass filter and keeps flat areas flat")
    func lanczosBehaviour() {
        // A one-pixel checkerboard shrunk 8x must average to mid-gray; nearest-neighbour or a
        // missing low-pass would give black, white or moire.
        let checker = makeRaster(width: 512, height: 512) { x, y in
            ((x + y) % 2 == 0 ? RGB(r: 0, g: 0, b: 0) : RGB(r: 255, g: 255, b: 255), 255)
        }
        let small = resampleSquare(checker, window: SourceWindow(x: 0, y: 0, size: 512), outSize: 64)
        for (x, y) in [(0, 0), (31, 17), (63, 63)] {
            #expect(abs(Int(pixel(small, x, y).0.r) - 128) <= 3)
        }
        let flat = makeRaster(width: 37, height: 53) { _, _ in (RGB(r: 10, g: 200, b: 30), 255) }
        for size in [8, 37, 100] {
            let out = resampleSquare(flat, window: SourceWindow(x: 0.5, y: 7.25, size: 36.5), outSize: size)
            #expect(out.pixels.enumerated().allSatisfy { i, v in v == [10, 200, 30][i % 3] })
        }
    }

    @Test("the row-ring resampler matches a direct separable computation", arguments: [false, true])
    func resamplerMatchesDirect(alpha: Bool) {
        // Busy, non-separable content with varying alpha; fractional window, down and up.
        let image = makeRaster(width: 97, height: 61, alpha: alpha) { x, y in
            (RGB(r: UInt8((x * 37 + y * 11) % 256), g: UInt8((x * y) % 256), b: UInt8((x ^ y) * 3 % 256)),
             UInt8(alpha ? (x * 5 + y * 3) % 256 : 255))
        }
        let c = image.channels
        for outSize in [20, 55, 80] {
            let window = SourceWindow(x: 3.5, y: 2.25, size: 55)
            let got = resampleSquare(image, window: window, outSize: outSize)
            let h = FilterTable(sourceCount: 97, windowStart: window.x, windowSize: window.size, outCount: outSize)
            let v = FilterTable(sourceCount: 61, windowStart: window.y, windowSize: window.size, outCount: outSize)
            var worst = 0.0
            for oy in 0..<outSize {
                for ox in 0..<outSize {
                    var sum = [Double](repeating: 0, count: 4)
                    for j in 0..<v.counts[oy] {
                        for i in 0..<h.counts[ox] {
                            let w = Double(v.weights[oy * v.stride + j]) * Double(h.weights[ox * h.stride + i])
                            let s = ((v.starts[oy] + j) * 97 + h.starts[ox] + i) * c
                            let a = alpha ? Double(image.pixels[s + 3]) : 255
                            for k in 0..<3 { sum[k] += w * Double(image.pixels[s + k]) * a / 255 }
                            sum[3] += w * a
                        }
                    }
                    let a = min(max(sum[3], 0), 255)
                    for k in 0..<c {
                        let expected = k == 3 ? a : (a < 0.5 ? 0 : min(max(sum[k] * 255 / a, 0), 255))
                        let actual = Double(got.pixels[(oy * outSize + ox) * c + k])
                        // Visible pixels must match to rounding; nearly transparent ones amplify
                        // float error when unpremultiplied and carry no visible colour anyway.
                        if k == 3 || a >= 16 { worst = max(worst, abs(actual - expected)) }
                    }
                }
            }
            #expect(worst <= 1, "out \(outSize): off by \(worst)")
        }
    }

    @Test("the centred window is exact and maps through orientation")
    func windows() throws {
        let r = AvatarRenderer(limits: ImageLimits())
        let h = ImageHeader(format: .jpeg, width: 2048, height: 1281, exifOrientation: 1, isAnimated: false)
        #expect(try r.sourceWindow(for: nil, header: h) == SourceWindow(x: 383.5, y: 0, size: 1281))
        let rotated = ImageHeader(format: .jpeg, width: 120, height: 80, exifOrientation: 6, isAnimated: false)
        // Displayed 80x120: centred square (0, 20, 80) is stored (20, 0, 80).
        #expect(try r.sourceWindow(for: nil, header: rotated) == SourceWindow(x: 20, y: 0, size: 80))
        #expect(try r.sourceWindow(for: CropRect(x: 10, y: 0, size: 40), header: rotated)
            == SourceWindow(x: 0, y: 30, size: 40))
    }

    @Test("DCT scaling only when Lanczos keeps at least a 2x reduction")
    func dctScale() {
        #expect(AvatarRenderer.dctScaleDenominator(cropSize: 1280, largestOutput: 512) == 1)
        #expect(AvatarRenderer.dctScaleDenominator(cropSize: 2048, largestOutput: 512) == 2)
        #expect(AvatarRenderer.dctScaleDenominator(cropSize: 2048, largestOutput: 256) == 4)
        #expect(AvatarRenderer.dctScaleDenominator(cropSize: 2048, largestOutput: 128) == 8)
        #expect(AvatarRenderer.dctScaleDenominator(cropSize: 300, largestOutput: 512) == 1)
    }

    @Test("a DCT-scaled JPEG decode still renders the right crop")
    func dctScaledRender() throws {
        let source = try jpeg(quadrants(width: 1200, height: 1100))
        let r = AvatarRenderer(limits: ImageLimits(), sizes: [128, 64])  // 1100 crop / 4 >= 256
        let out = try decodeAll(try r.render(source, crop: CropRect(x: 600, y: 550, size: 500)))[128]!
        #expect(close(pixel(out, 64, 64).0, .yellow))
        let centred = try decodeAll(try r.render(source, crop: nil))[128]!
        #expect(close(pixel(centred, 20, 20).0, .red) && close(pixel(centred, 108, 108).0, .yellow))
    }

    @Test("renderer settings are sanitised instead of trapping")
    func settings() throws {
        let r = AvatarRenderer(limits: ImageLimits(), sizes: [64, 0, -5, 64, 128, 100_000], quality: 400, method: 99)
        #expect(r.sizes == [128, 64] && r.quality == 100 && r.method == 6)
        #expect(throws: ImagingError.encodeFailed("no output sizes configured")) {
            try AvatarRenderer(limits: ImageLimits(), sizes: []).render(try jpeg(gradient(width: 8, height: 8)), crop: nil)
        }
    }
}
