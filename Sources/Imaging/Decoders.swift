internal import CJPEGShim
internal import CPNGShim
internal import CWebP

// Decoders. Each one is called only after `probeImage` accepted the header, so the buffers
// allocated here are bounded by the configured limits; each re-checks that the decoder's idea
// of the size matches the header before writing pixels.

/// Decodes a JPEG to RGB through the C shim (setjmp and all libjpeg calls live there).
/// `scaleDenominator` (1, 2, 4, 8) is libjpeg's DCT scaling, which skips most IDCT work when
/// the output is much smaller than the source. A CMYK file's rows go through `cmyk` (its
/// profile's conversion) when given, else through the naive conversion.
func decodeJPEG(_ bytes: [UInt8], width: Int, height: Int, scaleDenominator d: Int, cmyk: SRGBConversion? = nil)
    throws(ImagingError) -> Raster
{
    // libjpeg rounds scaled sizes up (jdiv_round_up).
    let outWidth = (width + d - 1) / d
    let outHeight = (height + d - 1) / d
    let capacity = outWidth * outHeight * 3
    var info = cameo_jpeg_info()
    var status: Int32 = -1
    let pixels = withRowConverter(cmyk) { converter, context in
        [UInt8](unsafeUninitializedCapacity: capacity) { out, count in
            status = bytes.withUnsafeBufferPointer { src in
                cameo_jpeg_decode_rgb(src.baseAddress, src.count, Int32(d), converter, context, out.baseAddress, capacity, &info)
            }
            count = status == Int32(CAMEO_JPEG_OK) ? capacity : 0
        }
    }
    guard status == Int32(CAMEO_JPEG_OK) else {
        throw .corrupt(jpegMessage(&info, fallback: "JPEG decode failed (status \(status))"))
    }
    guard Int(info.output_width) == outWidth, Int(info.output_height) == outHeight else {
        throw .corrupt("JPEG decoded to an unexpected size")
    }
    return Raster(width: outWidth, height: outHeight, channels: 3, pixels: pixels)
}

/// The row callback of both shims (cameo_jpeg_cmyk_converter, cameo_png_row_converter).
private typealias RowConverter = @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, UnsafeMutableRawPointer?, Int) -> Void

/// Runs `body` with a C row callback and its context that convert through `conversion` (both
/// nil without one). The conversion outlives the call; the callback never escapes it.
private func withRowConverter<Result>(
    _ conversion: SRGBConversion?,
    _ body: (RowConverter?, UnsafeMutableRawPointer?) -> Result
) -> Result {
    guard let conversion else { return body(nil, nil) }
    return withExtendedLifetime(conversion) {
        body(
            { context, input, output, pixels in
                guard let context, let input, let output else { return }
                Unmanaged<SRGBConversion>.fromOpaque(context).takeUnretainedValue().convert(input, into: output, pixels: pixels)
            },
            Unmanaged.passUnretained(conversion).toOpaque())
    }
}

/// What a PNG says about its colours (`ColourManagement.pngColours`) and its pixels, read
/// before decoding.
struct PNGColourInfo {
    var source: ColourManagement.Source
    var hasAlpha: Bool
    var is16Bit: Bool
    var interlaced: Bool
}

/// Reads a PNG's colour chunks and pixel layout (libpng's full API, in CPNGShim).
func readPNGColours(_ bytes: [UInt8]) throws(ImagingError) -> PNGColourInfo {
    var colour = cameo_png_colour()
    var status: Int32 = 0
    let capacity = ColourManagement.maxProfileBytes
    let profile = [UInt8](unsafeUninitializedCapacity: capacity) { out, count in
        status = bytes.withUnsafeBufferPointer { src in cameo_png_read_colour(src.baseAddress, src.count, out.baseAddress, capacity, &colour) }
        count = status == Int32(CAMEO_PNG_OK) ? colour.profile_length : 0
    }
    guard status == Int32(CAMEO_PNG_OK) || status == Int32(CAMEO_PNG_TOO_LARGE) else { throw .corrupt("PNG unreadable") }
    return PNGColourInfo(
        source: ColourManagement.pngColours(colour, profile: profile, oversized: status == Int32(CAMEO_PNG_TOO_LARGE)),
        hasAlpha: colour.has_alpha != 0, is16Bit: colour.bit_depth == 16, interlaced: colour.interlaced != 0)
}

/// Decodes a PNG to 8-bit RGB, or RGBA when the file can carry transparency (an alpha channel
/// or tRNS): palette, gray and low bit depths expanded, no gamma applied (colour management
/// reads gAMA). A 16-bit file goes through `wide` a row at a time when given, so the colour
/// conversion sees its 16 bits.
func decodePNG(_ bytes: [UInt8], width: Int, height: Int, hasAlpha: Bool, wide: SRGBConversion? = nil)
    throws(ImagingError) -> Raster
{
    let channels = hasAlpha ? 4 : 3
    let count = width * height * channels
    var status: Int32 = -1
    let pixels = withRowConverter(wide) { converter, context in
        [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            status = bytes.withUnsafeBufferPointer { src in
                cameo_png_decode(src.baseAddress, src.count, Int32(width), Int32(height), hasAlpha ? 1 : 0, converter, context, out.baseAddress, count)
            }
            initialized = status == Int32(CAMEO_PNG_OK) ? count : 0
        }
    }
    guard status == Int32(CAMEO_PNG_OK) else { throw .corrupt("PNG damaged or truncated") }
    return Raster(width: width, height: height, channels: channels, pixels: pixels)
}

/// Decodes a WebP to RGB or RGBA. Animated files yield their first frame, composited at its
/// offset onto a transparent canvas of the animation's size (what a viewer shows first).
func decodeWebP(_ bytes: [UInt8], width: Int, height: Int) throws(ImagingError) -> Raster {
    var features = WebPBitstreamFeatures()
    let status = bytes.withUnsafeBufferPointer { WebPGetFeatures($0.baseAddress, $0.count, &features) }
    guard status == VP8_STATUS_OK, Int(features.width) == width, Int(features.height) == height else {
        throw .corrupt("WebP header unreadable")
    }
    if features.has_animation != 0 {
        return try decodeWebPFirstFrame(bytes, width: width, height: height)
    }
    let channels = features.has_alpha != 0 ? 4 : 3
    return try decodeWebPStill(bytes[...], width: width, height: height, channels: channels)
}

/// Decodes a single-image WebP bitstream (a whole file or one animation frame's payload)
/// straight into a Swift-owned buffer.
private func decodeWebPStill(_ bytes: ArraySlice<UInt8>, width: Int, height: Int, channels: Int)
    throws(ImagingError) -> Raster
{
    let count = width * height * channels
    let stride = Int32(width * channels)
    var ok = false
    let pixels = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
        let result = bytes.withUnsafeBufferPointer { src in
            channels == 4
                ? WebPDecodeRGBAInto(src.baseAddress, src.count, out.baseAddress, count, stride)
                : WebPDecodeRGBInto(src.baseAddress, src.count, out.baseAddress, count, stride)
        }
        ok = result != nil
        initialized = ok ? count : 0
    }
    guard ok else { throw .corrupt("WebP bitstream undecodable or truncated") }
    return Raster(width: width, height: height, channels: channels, pixels: pixels)
}

/// First frame of an animated WebP via WebPDemux.
private func decodeWebPFirstFrame(_ bytes: [UInt8], width: Int, height: Int) throws(ImagingError)
    -> Raster
{
    var failure = "animated WebP undecodable"
    var frameInfo: (x: Int, y: Int, width: Int, height: Int, payload: ArraySlice<UInt8>)?
    bytes.withUnsafeBufferPointer { src in
        var data = WebPData(bytes: src.baseAddress, size: src.count)
        guard let demux = WebPDemux(&data) else {
            failure = "animated WebP container unreadable"
            return
        }
        defer { WebPDemuxDelete(demux) }
        var iter = WebPIterator()
        guard WebPDemuxGetFrame(demux, 1, &iter) != 0 else {
            failure = "animated WebP has no frames"
            return
        }
        defer { WebPDemuxReleaseIterator(&iter) }
        // The fragment points into `bytes`; turn it into a slice so no pointer escapes.
        guard let fragment = iter.fragment.bytes, let base = src.baseAddress else { return }
        let start = fragment - base
        let end = start + iter.fragment.size
        guard start >= 0, end <= src.count else { return }
        frameInfo = (Int(iter.x_offset), Int(iter.y_offset), Int(iter.width), Int(iter.height),
                     bytes[start..<end])
    }
    guard let frameInfo else { throw .corrupt(failure) }
    guard frameInfo.width > 0, frameInfo.height > 0, frameInfo.x >= 0, frameInfo.y >= 0,
          frameInfo.x + frameInfo.width <= width, frameInfo.y + frameInfo.height <= height
    else { throw .corrupt("animated WebP frame outside its canvas") }
    let frame = try decodeWebPStill(
        frameInfo.payload, width: frameInfo.width, height: frameInfo.height, channels: 4)
    if frame.width == width, frame.height == height { return frame }
    // Blend onto a transparent canvas is a plain copy: nothing is underneath the first frame.
    var canvas = [UInt8](repeating: 0, count: width * height * 4)
    let rowBytes = frame.width * 4
    for row in 0..<frame.height {
        let src = row * rowBytes
        let dst = ((frameInfo.y + row) * width + frameInfo.x) * 4
        canvas[dst..<(dst + rowBytes)] = frame.pixels[src..<(src + rowBytes)]
    }
    return Raster(width: width, height: height, channels: 4, pixels: canvas)
}
