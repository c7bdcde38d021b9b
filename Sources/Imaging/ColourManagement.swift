internal import CJPEGShim
internal import CLCMS2
internal import CPNGShim
internal import CWebP

/// Embedded ICC profiles, honoured with littlecms: the avatar shows the colours the photo was
/// seen in (a Display P3 iPhone photo, an Adobe RGB camera file). The output carries no
/// profile: it is sRGB.
///
/// The conversion runs on the resampled renditions, not on the decoded source: a 2048×1280
/// photo is 2.6 million pixels, its 512² rendition a tenth of that, and littlecms takes about
/// 15 ns a pixel (40 ms a photo before, 4 ms after: +51 % CPU against +5 %). The resampler is
/// linear in the encoded values either way, and what it mixes is neighbouring pixels of
/// nearly the same colour, so the colours come out the same (the tests measure it: mean
/// ΔE00 under 0.6 from the sRGB upload).
///
/// Relative colorimetric with black-point compensation, not perceptual: the matrix profiles
/// of cameras and phones (Adobe RGB, Display P3, ProPhoto) have no perceptual tables, so
/// littlecms would fall back to colorimetric anyway, and colorimetric keeps every colour that
/// sRGB can show exactly where it was; only colours outside sRGB are clipped. Black-point
/// compensation maps the source's black to sRGB's instead of crushing the shadows.
enum ColourManagement {
    /// The largest profile read (real ones are a few hundred bytes to a few hundred KB); a
    /// larger one is ignored.
    static let maxProfileBytes = 1 << 20

    /// littlecms's error log, off once per process: a hostile or broken profile's errors come
    /// back as NULL, and are reported as `.ignored`.
    private static let silenced: Void = cmsSetLogErrorHandler(nil)

    /// What happened to the source's colours, for the log.
    enum Outcome: Equatable, Sendable {
        /// No profile, or one that describes sRGB: the pixels were used as they are.
        case untouched
        /// Converted from the profile named here.
        case converted(String)
        /// A profile was there but could not be used (why); the pixels were used as they are.
        case ignored(String)
    }

    /// The JPEG's embedded profile, or nil when it has none (or one over `maxProfileBytes`,
    /// reported as `.ignored` by the caller through `toSRGB`).
    static func jpegProfile(_ bytes: [UInt8]) -> [UInt8]? {
        var info = cameo_jpeg_info()
        var length = 0
        var status: Int32 = 0
        let profile = [UInt8](unsafeUninitializedCapacity: maxProfileBytes) { out, count in
            status = bytes.withUnsafeBufferPointer { src in
                cameo_jpeg_read_icc(src.baseAddress, src.count, out.baseAddress, maxProfileBytes, &length, &info)
            }
            count = status == Int32(CAMEO_JPEG_OK) ? length : 0
        }
        if status == Int32(CAMEO_JPEG_BUFFER_TOO_SMALL) { return [] }  // too large: ignored
        return profile.isEmpty ? nil : profile
    }

    /// The PNG's iCCP profile, or nil when it has none. (Where a file has none, libpng's
    /// simplified decoder already maps its gAMA to sRGB's curve; cHRM is not read.)
    static func pngProfile(_ bytes: [UInt8]) -> [UInt8]? {
        var length = 0
        var status: Int32 = 0
        let profile = [UInt8](unsafeUninitializedCapacity: maxProfileBytes) { out, count in
            status = bytes.withUnsafeBufferPointer { src in cameo_png_read_icc(src.baseAddress, src.count, out.baseAddress, maxProfileBytes, &length) }
            count = status == 0 ? length : 0
        }
        if status == 1 { return [] }  // too large: ignored
        return profile.isEmpty ? nil : profile
    }

    /// The WebP's ICCP chunk (extended format), or nil when it has none.
    static func webpProfile(_ bytes: [UInt8]) -> [UInt8]? {
        bytes.withUnsafeBufferPointer { src -> [UInt8]? in
            var data = WebPData(bytes: src.baseAddress, size: src.count)
            guard let demux = WebPDemux(&data) else { return nil }
            defer { WebPDemuxDelete(demux) }
            var chunk = WebPChunkIterator()
            guard WebPDemuxGetChunk(demux, "ICCP", 1, &chunk) != 0 else { return nil }
            defer { WebPDemuxReleaseChunkIterator(&chunk) }
            guard chunk.chunk.size <= maxProfileBytes else { return [] }  // too large: ignored
            // The chunk points into `bytes`: copied out, so no pointer escapes.
            guard let start = chunk.chunk.bytes, let base = src.baseAddress else { return nil }
            let offset = start - base
            guard offset >= 0, offset + chunk.chunk.size <= src.count else { return nil }
            return Array(src[offset..<(offset + chunk.chunk.size)])
        }
    }

    /// The conversion from `profile` to sRGB for pixels with or without alpha, made once and
    /// applied to each rendition; nil with why when there is nothing to convert.
    static func conversion(from profile: [UInt8]?, alpha: Bool) -> (SRGBConversion?, Outcome) {
        guard let profile else { return (nil, .untouched) }
        guard !profile.isEmpty else { return (nil, .ignored("profile over \(maxProfileBytes) bytes")) }
        _ = silenced
        guard let source = profile.withUnsafeBytes({ cmsOpenProfileFromMem($0.baseAddress, UInt32($0.count)) }) else {
            return (nil, .ignored("profile unreadable"))
        }
        defer { cmsCloseProfile(source) }
        guard cmsGetColorSpace(source) == cmsSigRgbData else { return (nil, .ignored("not an RGB profile")) }
        let name = description(of: source)
        // Matrix/TRC profiles only (what cameras and phones write): littlecms allocates a LUT
        // profile's whole grid before it reads it, so a few hundred bytes could ask for 500 MB.
        let lutTags = [cmsSigAToB0Tag, cmsSigAToB1Tag, cmsSigAToB2Tag, cmsSigDToB0Tag, cmsSigDToB1Tag, cmsSigDToB2Tag]
        guard cmsIsMatrixShaper(source) != 0, !lutTags.contains(where: { cmsIsTag(source, $0) != 0 }) else {
            return (nil, .ignored("profile \(name) is not a matrix/TRC profile"))
        }
        guard let srgb = cmsCreate_sRGBProfile() else { return (nil, .ignored("no sRGB profile")) }
        defer { cmsCloseProfile(srgb) }
        // Already sRGB (by what it says, not what it is called): no transform, no cost.
        if describesSameSpace(source, srgb) { return (nil, .untouched) }
        let format = alpha ? cameo_lcms_rgba_8 : cameo_lcms_rgb_8
        let flags = UInt32(cmsFLAGS_BLACKPOINTCOMPENSATION) | (alpha ? UInt32(cmsFLAGS_COPY_ALPHA) : 0)
        guard let transform = cmsCreateTransform(source, format, srgb, format, UInt32(INTENT_RELATIVE_COLORIMETRIC), flags) else {
            return (nil, .ignored("profile \(name) cannot be converted"))
        }
        return (SRGBConversion(transform: transform), .converted(name))
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
        return true
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

/// A littlecms transform from one source profile to sRGB (8-bit RGB or RGBA), freed with it.
final class SRGBConversion {
    private let transform: cmsHTRANSFORM

    fileprivate init(transform: cmsHTRANSFORM) { self.transform = transform }

    deinit { cmsDeleteTransform(transform) }

    func apply(_ raster: Raster) -> Raster {
        var converted = raster
        raster.pixels.withUnsafeBytes { src in
            converted.pixels.withUnsafeMutableBytes { dst in
                cmsDoTransform(transform, src.baseAddress, dst.baseAddress, UInt32(raster.width * raster.height))
            }
        }
        return converted
    }
}
