/// Turns an uploaded image into the square WebP avatar renditions.
///
/// Pipeline: sniff → header and limits (before any pixel allocation) → decode → EXIF
/// orientation → crop → Lanczos-3 resample to each size → WebP encode. Orientation is applied
/// to the small resampled squares rather than the full decoded image: the crop is mapped back
/// into stored coordinates instead, which gives the same pixels for a fraction of the work.
public struct AvatarRenderer: Sendable {
    /// Header limits applied before decoding.
    public let limits: ImageLimits
    /// Output side lengths, largest first, deduplicated; sizes outside 1...4096 are dropped.
    public let sizes: [Int]
    /// WebP quality, 0...100.
    public let quality: Float
    /// WebP method (speed/size trade-off), 0...6.
    public let method: Int

    /// Largest output side accepted: far above any avatar, small enough to bound memory.
    static let maxOutputSize = 4096

    /// Creates a renderer. Out-of-range settings are clamped or dropped rather than trapping,
    /// since they come from configuration; `render` fails with `encodeFailed` when no usable
    /// size is left.
    public init(limits: ImageLimits, sizes: [Int] = [512, 256, 128, 64], quality: Float = 80, method: Int = 4) {
        self.limits = limits
        self.sizes = Array(Set(sizes.filter { (1...Self.maxOutputSize).contains($0) })).sorted(by: >)
        self.quality = quality.isNaN ? 80 : min(max(quality, 0), 100)
        self.method = min(max(method, 0), 6)
    }

    /// Renders every configured size from `bytes`.
    ///
    /// `crop` is in oriented (as displayed) pixel coordinates and must lie inside the oriented
    /// image, else `badCrop`; nil means the centred square of side min(width, height), placed
    /// at the exact (possibly half-pixel) centre.
    public func render(_ bytes: [UInt8], crop: CropRect?) throws(ImagingError) -> AvatarRenditions {
        guard let largest = sizes.first else { throw .encodeFailed("no output sizes configured") }
        let probed = try probeImage(bytes, limits: limits)
        let header = probed.header
        let window = try sourceWindow(for: crop, header: header)

        // `toSRGB` is the conversion still to run on each rendition; sources that need theirs
        // while decoding (CMYK, 16-bit) have had it (see ColourManagement).
        let decoded: Raster
        var decodeWindow = window
        let toSRGB: SRGBConversion?
        let colour: ColourManagement.Outcome
        var decodedFrom16Bits = false
        switch header.format {
        case .jpeg:
            let d = Self.dctScaleDenominator(cropSize: window.size, largestOutput: largest)
            let (source, isCMYK) = ColourManagement.jpegColours(bytes)
            if isCMYK {
                let ink: SRGBConversion?
                (ink, colour) = ColourManagement.conversion(from: source, input: .cmyk8)
                decoded = try decodeJPEG(bytes, width: header.width, height: header.height, scaleDenominator: d, cmyk: ink)
                toSRGB = nil
            } else {
                decoded = try decodeJPEG(bytes, width: header.width, height: header.height, scaleDenominator: d)
                (toSRGB, colour) = ColourManagement.conversion(from: source, input: .rgb8)
            }
            // Scaled pixel i covers source pixels [i·d, (i+1)·d), so coordinates divide exactly.
            let scale = 1 / Double(d)
            decodeWindow = SourceWindow(x: window.x * scale, y: window.y * scale, size: window.size * scale)
        case .png:
            let info = try readPNGColours(bytes)
            // 16 bits reach littlecms only row by row, which Adam7's passes do not allow. A
            // 16-bit conversion is made even for an sRGB profile: its samples still need 8 bits.
            let wide = info.is16Bit && !info.interlaced
            let conversion: SRGBConversion?
            (conversion, colour) = ColourManagement.conversion(from: info.source, input: .rgb(alpha: info.hasAlpha, sixteenBit: wide))
            let sixteenBit = wide && conversion != nil
            decoded = try decodePNG(bytes, width: header.width, height: header.height, hasAlpha: info.hasAlpha, wide: sixteenBit ? conversion : nil)
            toSRGB = sixteenBit ? nil : conversion
            decodedFrom16Bits = sixteenBit
        case .webp:
            decoded = try decodeWebP(bytes, width: header.width, height: header.height)
            (toSRGB, colour) = ColourManagement.conversion(from: ColourManagement.webpColours(bytes), input: decoded.hasAlpha ? .rgba8 : .rgb8)
        }

        let orientation = header.exifOrientation
        let converted = { (raster: Raster) in toSRGB?.apply(raster) ?? raster }
        let top = converted(resampleSquare(decoded, window: decodeWindow, outSize: largest).oriented(orientation))
        var rasters: [Int: Raster] = [largest: top]
        for size in sizes.dropFirst() {
            if decodeWindow.size >= Double(largest) {
                // The largest rendition is a clean low-passed downscale of the crop, and at
                // ≥ 2× each smaller size it filters as well as the source would, for ~1/6 of
                // the work.
                let full = SourceWindow(x: 0, y: 0, size: Double(largest))
                rasters[size] = resampleSquare(top, window: full, outSize: size)
            } else {
                // The largest was upscaled from a small crop: go back to the real pixels.
                rasters[size] = converted(resampleSquare(decoded, window: decodeWindow, outSize: size).oriented(orientation))
            }
        }

        var webp: [Int: [UInt8]] = [:]
        for (size, raster) in rasters {
            webp[size] = try encodeWebP(raster, quality: quality, method: method)
        }
        var note: String? = nil
        switch colour {
        case .untouched: break
        case .converted(let name):
            note = "colours converted to sRGB from the embedded profile \(name)\(decodedFrom16Bits ? ", from 16 bits" : "")"
        case .ignored(let why): note = "embedded colour profile ignored: \(why)"
        }
        return AvatarRenditions(
            sourceWidth: header.width, sourceHeight: header.height, format: header.format, webp: webp, colourNote: note)
    }

    /// Validates the client's crop against the oriented size (or builds the centred default)
    /// and maps it into stored-image coordinates.
    func sourceWindow(for crop: CropRect?, header: ImageHeader) throws(ImagingError) -> SourceWindow {
        let ow = header.orientedWidth
        let oh = header.orientedHeight
        let x: Double, y: Double, s: Double
        if let crop {
            guard crop.size > 0 else { throw .badCrop("crop size must be positive") }
            guard crop.x >= 0, crop.y >= 0 else { throw .badCrop("crop origin must not be negative") }
            // Written as subtractions so huge client values cannot overflow.
            guard crop.size <= ow, crop.size <= oh, crop.x <= ow - crop.size, crop.y <= oh - crop.size else {
                throw .badCrop("crop \(crop.x),\(crop.y) size \(crop.size) leaves the \(ow)x\(oh) image")
            }
            (x, y, s) = (Double(crop.x), Double(crop.y), Double(crop.size))
        } else {
            let side = min(ow, oh)
            (x, y, s) = (Double(ow - side) / 2, Double(oh - side) / 2, Double(side))
        }
        return SourceWindow.fromOriented(
            x: x, y: y, size: s, orientation: header.exifOrientation,
            width: Double(header.width), height: Double(header.height))
    }

    /// libjpeg DCT scaling (1/2, 1/4, 1/8) is nearly free but is a crude box-like filter, so it
    /// is used only while the Lanczos pass still has at least a 2× reduction left over the crop
    /// for the largest output: e.g. a 1280 px crop to 512 stays at 1/1 (640 < 1024).
    static func dctScaleDenominator(cropSize: Double, largestOutput: Int) -> Int {
        for d in [8, 4, 2] where cropSize / Double(d) >= 2 * Double(largestOutput) {
            return d
        }
        return 1
    }
}
