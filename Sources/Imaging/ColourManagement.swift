internal import CJPEGShim
internal import CLCMS2
internal import CLCMS2Shim
internal import CPNGShim
internal import CWebP

/// Embedded colour profiles, honoured with littlecms: the avatar shows the colours the photo
/// was seen in (a Display P3 iPhone photo, an Adobe RGB camera file, a CMYK print file). The
/// output carries no profile: it is sRGB.
///
/// Where the conversion runs:
/// - 8-bit RGB sources: on the resampled renditions, not on the decoded source. A 2048×1280
///   photo is 2.6 million pixels, its 512² rendition a tenth of that, and littlecms takes
///   about 15 ns a pixel (40 ms a photo before, 4 ms after: +51 % CPU against +13 %). The
///   resampler is linear in the encoded values either way, and what it mixes is neighbouring
///   pixels of nearly the same colour, so the colours come out the same (the tests measure
///   it: mean ΔE00 under 0.6 from the sRGB upload).
/// - CMYK JPEGs and 16-bit PNGs: while decoding, a row at a time, because the resampler works
///   on 8-bit RGB: CMYK has to become RGB first, and 16 bits are only worth keeping if the
///   conversion sees them. Both are rare, and cost one transform of the decoded pixels.
///
/// Relative colorimetric with black-point compensation, not perceptual: the matrix profiles
/// of cameras and phones (Adobe RGB, Display P3, ProPhoto) have no perceptual tables, so
/// littlecms would fall back to colorimetric anyway, and colorimetric keeps every colour that
/// sRGB can show exactly where it was; only colours outside sRGB are clipped. Black-point
/// compensation maps the source's black to sRGB's instead of crushing the shadows (a CMYK
/// file's black is far from sRGB's).
///
/// A profile is the uploader's to write: it is read in a littlecms context with a memory
/// budget (CLCMS2Shim), so a LUT profile that declares a gigabyte grid fails to open instead of
/// exhausting the worker, and fails like any broken profile: ignored, logged, never fatal.
enum ColourManagement {
    /// The largest profile read (real ones are a few hundred bytes to a few hundred KB); a
    /// larger one is ignored.
    static let maxProfileBytes = 1 << 20

    /// littlecms's own memory for one upload: the profile's tables and the transform's. A
    /// profile's stored tables are under `maxProfileBytes`, and littlecms widens them at most
    /// 4×; the transform's precomputed grid is 2 MB at most (23⁴ nodes for CMYK).
    static let memoryBudget = 16 << 20

    /// What happened to the source's colours, for the log.
    enum Outcome: Equatable, Sendable {
        /// No profile, or one that describes sRGB: the pixels were used as they are.
        case untouched
        /// Converted from the profile named here.
        case converted(String)
        /// A profile was there but could not be used (why); the pixels were used as they are.
        case ignored(String)
    }

    /// What a file says about its colours.
    enum Source {
        /// Nothing: sRGB, as browsers assume.
        case unstated
        /// An embedded ICC profile.
        case profile([UInt8])
        /// A profile over `maxProfileBytes`, left unread.
        case oversizedProfile
        /// A PNG's cHRM and gAMA chunks without iCCP or sRGB: primaries and white point as
        /// (x, y) (sRGB's where absent) and the file gamma (sRGB's curve where absent).
        case chromaticities(white: (Double, Double), primaries: [(Double, Double)], gamma: Double?)
    }

    /// The pixels a conversion reads; it writes 8-bit RGB, or RGBA where the input has alpha.
    enum Input {
        case rgb8, rgba8, rgb16, rgba16, cmyk8

        var format: UInt32 {
            switch self {
            case .rgb8: cameo_lcms_rgb_8
            case .rgba8: cameo_lcms_rgba_8
            case .rgb16: cameo_lcms_rgb_16
            case .rgba16: cameo_lcms_rgba_16
            case .cmyk8: cameo_lcms_cmyk_8
            }
        }
        /// RGB or RGBA, at 16 bits or 8.
        static func rgb(alpha: Bool, sixteenBit: Bool) -> Input {
            sixteenBit ? (alpha ? .rgba16 : .rgb16) : (alpha ? .rgba8 : .rgb8)
        }

        var hasAlpha: Bool { self == .rgba8 || self == .rgba16 }
        var colourSpace: cmsColorSpaceSignature { self == .cmyk8 ? cmsSigCmykData : cmsSigRgbData }
    }

    /// A JPEG's embedded profile (APP2 segments), and whether its pixels are CMYK.
    static func jpegColours(_ bytes: [UInt8]) -> (source: Source, isCMYK: Bool) {
        var info = cameo_jpeg_info()
        var length = 0
        var status: Int32 = 0
        let profile = [UInt8](unsafeUninitializedCapacity: maxProfileBytes) { out, count in
            status = bytes.withUnsafeBufferPointer { src in
                cameo_jpeg_read_icc(src.baseAddress, src.count, out.baseAddress, maxProfileBytes, &length, &info)
            }
            count = status == Int32(CAMEO_JPEG_OK) ? length : 0
        }
        let isCMYK = info.components == 4
        if status == Int32(CAMEO_JPEG_BUFFER_TOO_SMALL) { return (.oversizedProfile, isCMYK) }
        return (profile.isEmpty ? .unstated : .profile(profile), isCMYK)
    }

    /// What a PNG's colour chunks say, by the PNG specification's order: iCCP, then sRGB, then
    /// cHRM and gAMA. A gAMA of 1/2.2 (within libpng's own 5 %) without other chromaticities
    /// than sRGB's is what most writers put on sRGB files: taken as sRGB, at no cost.
    static func pngColours(_ colour: cameo_png_colour, profile: [UInt8], oversized: Bool) -> Source {
        if oversized { return .oversizedProfile }
        if colour.profile_length > 0 { return .profile(profile) }
        if colour.has_srgb != 0 { return .unstated }
        let gamma = colour.gamma > 0 ? Double(colour.gamma) / 100_000 : nil
        let fixed = { (v: UInt32) in Double(v) / 100_000 }
        let white = colour.has_chrm != 0 ? (fixed(colour.white_x), fixed(colour.white_y)) : srgbWhite
        let primaries = colour.has_chrm != 0
            ? [(fixed(colour.red_x), fixed(colour.red_y)), (fixed(colour.green_x), fixed(colour.green_y)), (fixed(colour.blue_x), fixed(colour.blue_y))]
            : srgbPrimaries
        let srgbGamma = gamma.map { abs($0 * 2.2 - 1) < 0.05 } ?? true
        let close = { (a: (Double, Double), b: (Double, Double)) in abs(a.0 - b.0) < 0.005 && abs(a.1 - b.1) < 0.005 }
        let srgbChromaticities = close(white, srgbWhite) && zip(primaries, srgbPrimaries).allSatisfy(close)
        if srgbGamma && srgbChromaticities { return .unstated }
        return .chromaticities(white: white, primaries: primaries, gamma: gamma)
    }

    /// The WebP's ICCP chunk (extended format).
    static func webpColours(_ bytes: [UInt8]) -> Source {
        bytes.withUnsafeBufferPointer { src -> Source in
            var data = WebPData(bytes: src.baseAddress, size: src.count)
            guard let demux = WebPDemux(&data) else { return .unstated }
            defer { WebPDemuxDelete(demux) }
            var chunk = WebPChunkIterator()
            guard WebPDemuxGetChunk(demux, "ICCP", 1, &chunk) != 0 else { return .unstated }
            defer { WebPDemuxReleaseChunkIterator(&chunk) }
            guard chunk.chunk.size <= maxProfileBytes else { return .oversizedProfile }
            // The chunk points into `bytes`: copied out, so no pointer escapes.
            guard let start = chunk.chunk.bytes, let base = src.baseAddress else { return .unstated }
            let offset = start - base
            guard offset >= 0, offset + chunk.chunk.size <= src.count else { return .unstated }
            return .profile(Array(src[offset..<(offset + chunk.chunk.size)]))
        }
    }

    static let srgbWhite = (0.3127, 0.3290)
    static let srgbPrimaries = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)]

    /// The conversion from `source` to sRGB for `input` pixels, made once per upload; nil with
    /// why when there is nothing to convert.
    static func conversion(from source: Source, input: Input) -> (SRGBConversion?, Outcome) {
        switch source {
        case .unstated: return (nil, .untouched)
        case .oversizedProfile: return (nil, .ignored("profile over \(maxProfileBytes) bytes"))
        case .profile, .chromaticities: break
        }
        guard let context = cameo_lcms_bounded_context(memoryBudget) else { return (nil, .ignored("no colour context")) }
        var handed = false
        defer { if !handed { cameo_lcms_delete_context(context) } }
        guard let (profile, name) = open(source, in: context) else { return (nil, .ignored("profile unreadable")) }
        defer { cmsCloseProfile(profile) }
        guard cmsGetColorSpace(profile) == input.colourSpace else {
            return (nil, .ignored("profile \(name) is not for \(input == .cmyk8 ? "CMYK" : "RGB") pixels"))
        }
        guard let srgb = cmsCreate_sRGBProfileTHR(context) else { return (nil, .ignored("no sRGB profile")) }
        defer { cmsCloseProfile(srgb) }
        // Already sRGB (by what it says, not what it is called): no transform, no cost. An
        // 8-bit source only: 16-bit ones still need their samples brought to 8.
        if input != .rgb16, input != .rgba16, describesSameSpace(profile, srgb) { return (nil, .untouched) }
        let output = input.hasAlpha ? cameo_lcms_rgba_8 : cameo_lcms_rgb_8
        let flags = UInt32(cmsFLAGS_BLACKPOINTCOMPENSATION) | (input.hasAlpha ? UInt32(cmsFLAGS_COPY_ALPHA) : 0)
        guard let transform = cmsCreateTransformTHR(context, profile, input.format, srgb, output, UInt32(INTENT_RELATIVE_COLORIMETRIC), flags) else {
            return (nil, .ignored("profile \(name) cannot be converted"))
        }
        handed = true
        return (SRGBConversion(context: context, transform: transform), .converted(name))
    }

    /// The source profile, opened in `context`, and its name for the log.
    private static func open(_ source: Source, in context: cameo_lcms_context) -> (cmsHPROFILE, String)? {
        switch source {
        case .profile(let bytes):
            guard let profile = bytes.withUnsafeBytes({ cmsOpenProfileFromMemTHR(context, $0.baseAddress, UInt32($0.count)) }) else { return nil }
            return (profile, description(of: profile))
        case .chromaticities(let white, let primaries, let gamma):
            // A gAMA of g means the stored value is linear^g: the curve to linear is the 1/g power.
            let curve = gamma.map { cmsBuildGamma(context, 1 / $0) }
                ?? [2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045].withUnsafeBufferPointer { cmsBuildParametricToneCurve(context, 4, $0.baseAddress) }
            guard let curve else { return nil }
            defer { cmsFreeToneCurve(curve) }
            var whitePoint = cmsCIExyY(x: white.0, y: white.1, Y: 1)
            var triple = cmsCIExyYTRIPLE(
                Red: cmsCIExyY(x: primaries[0].0, y: primaries[0].1, Y: 1),
                Green: cmsCIExyY(x: primaries[1].0, y: primaries[1].1, Y: 1),
                Blue: cmsCIExyY(x: primaries[2].0, y: primaries[2].1, Y: 1))
            var curves: [OpaquePointer?] = [curve, curve, curve]
            guard let profile = cmsCreateRGBProfileTHR(context, &whitePoint, &triple, &curves) else { return nil }
            let described = gamma.map { "gamma \(1 / $0)" } ?? "sRGB curve"
            return (profile, "from the PNG's cHRM and gAMA (\(described))")
        default:
            return nil
        }
    }

    /// Whether two matrix/TRC profiles have the same colorants and tone curves, within what
    /// 8 bits can show. A profile without them (a LUT profile) is not taken for sRGB.
    static func describesSameSpace(_ a: cmsHPROFILE, _ b: cmsHPROFILE) -> Bool {
        let colorants = [cmsSigRedColorantTag, cmsSigGreenColorantTag, cmsSigBlueColorantTag]
        for tag in colorants {
            guard let x = cmsReadTag(a, tag)?.assumingMemoryBound(to: cmsCIEXYZ.self).pointee,
                let y = cmsReadTag(b, tag)?.assumingMemoryBound(to: cmsCIEXYZ.self).pointee,
                abs(x.X - y.X) < 0.002, abs(x.Y - y.Y) < 0.002, abs(x.Z - y.Z) < 0.002
            else { return false }
        }
        for tag in [cmsSigRedTRCTag, cmsSigGreenTRCTag, cmsSigBlueTRCTag] {
            guard let p = cmsReadTag(a, tag), let q = cmsReadTag(b, tag) else { return false }
            let first = OpaquePointer(p), second = OpaquePointer(q)
            for step in 0...16 {
                let v = Float(step) / 16
                if abs(cmsEvalToneCurveFloat(first, v) - cmsEvalToneCurveFloat(second, v)) > 0.5 / 255 { return false }
            }
        }
        // A LUT profile's tables win over its colorants when littlecms converts.
        let lutTags = [cmsSigAToB0Tag, cmsSigAToB1Tag, cmsSigAToB2Tag, cmsSigDToB0Tag, cmsSigDToB1Tag, cmsSigDToB2Tag]
        return !lutTags.contains { cmsIsTag(a, $0) != 0 }
    }

    private static func description(of profile: cmsHPROFILE) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let count = cmsGetProfileInfoASCII(profile, cmsInfoDescription, "en", "US", &buffer, UInt32(buffer.count))
        guard count > 0 else { return "without a name" }
        // The name is the file's to choose: printable ASCII only, and short, for the log.
        let printable = buffer.prefix { $0 != 0 }.prefix(64).map { UInt8(bitPattern: $0) }.map { (0x20..<0x7F).contains($0) ? $0 : UInt8(ascii: "?") }
        return String(decoding: printable, as: UTF8.self)
    }
}

/// A littlecms transform from one source to sRGB, with the bounded context it lives in; both
/// are freed with it.
final class SRGBConversion {
    private let context: cameo_lcms_context
    private let transform: cmsHTRANSFORM

    fileprivate init(context: cameo_lcms_context, transform: cmsHTRANSFORM) {
        self.context = context
        self.transform = transform
    }

    deinit {
        cmsDeleteTransform(transform)
        cameo_lcms_delete_context(context)
    }

    /// Converts an 8-bit raster (the conversion was made for its channels).
    func apply(_ raster: Raster) -> Raster {
        var converted = raster
        raster.pixels.withUnsafeBytes { src in
            converted.pixels.withUnsafeMutableBytes { dst in
                cmsDoTransform(transform, src.baseAddress, dst.baseAddress, UInt32(raster.width * raster.height))
            }
        }
        return converted
    }

    /// Converts `pixels` pixels from `input` to `output`, for the decoders' row callbacks.
    func convert(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, pixels: Int) {
        cmsDoTransform(transform, input, output, UInt32(pixels))
    }
}
