internal import CJPEGShim
internal import CPNG
internal import CWebP

// Decoders. Each one is called only after `probeImage` accepted the header, so the buffers
// allocated here are bounded by the configured limits; each re-checks that the decoder's idea
// of the size matches the header before writing pixels.

/// Decodes a JPEG to RGB through the C shim (setjmp and all libjpeg calls live there).
/// `scaleDenominator` (1, 2, 4, 8) is libjpeg's DCT scaling, which skips most IDCT work when
/// the output is much smaller than the source.
func decodeJPEG(_ bytes: [UInt8], width: Int, height: Int, scaleDenominator d: Int)
    throws(ImagingError) -> Raster
{
    // libjpeg rounds scaled sizes up (jdiv_round_up).
    let outWidth = (width + d - 1) / d
    let outHeight = (height + d - 1) / d
    let capacity = outWidth * outHeight * 3
    var info = cameo_jpeg_info()
    var status: Int32 = -1
    let pixels = [UInt8](unsafeUninitializedCapacity: capacity) { out, count in
        status = bytes.withUnsafeBufferPointer { src in
            cameo_jpeg_decode_rgb(src.baseAddress, src.count, Int32(d), out.baseAddress, capacity, &info)
        }
        count = status == Int32(CAMEO_JPEG_OK) ? capacity : 0
    }
    guard status == Int32(CAMEO_JPEG_OK) else {
        throw .corrupt(jpegMessage(&info, fallback: "JPEG decode failed (status \(status))"))
    }
    guard Int(info.output_width) == outWidth, Int(info.output_height) == outHeight else {
        throw .corrupt("JPEG decoded to an unexpected size")
    }
    return Raster(width: outWidth, height: outHeight, channels: 3, pixels: pixels)
}

/// Decodes a PNG with libpng's simplified API, which handles palette, tRNS, gray(+alpha),
/// 16-bit and interlacing, and does its own setjmp internally. The output is RGBA when the
/// file can carry transparency and RGB otherwise.
func decodePNG(_ bytes: [UInt8], width: Int, height: Int) throws(ImagingError) -> Raster {
    var failure: String?
    var raster: Raster?
    bytes.withUnsafeBufferPointer { src in
        // begin_read keeps a pointer to `src`, so the whole sequence stays inside this closure.
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        guard png_image_begin_read_from_memory(&image, src.baseAddress, src.count) != 0 else {
            failure = pngMessage(&image)
            return
        }
        guard Int(image.width) == width, Int(image.height) == height else {
            failure = "PNG header changed between probe and decode"
            return
        }
        let alpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        let channels = alpha ? 4 : 3
        image.format = alpha ? pngFormatRGBA : pngFormatRGB
        // 16-bit files without gAMA/sRGB are almost always sRGB-encoded in practice; without
        // this flag libpng would treat them as linear and brighten them.
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let count = width * height * channels
        var ok: Int32 = 0
        let pixels = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            ok = png_image_finish_read(&image, nil, out.baseAddress, 0, nil)
            initialized = ok != 0 ? count : 0
        }
        guard ok != 0 else {
            failure = pngMessage(&image)
            return
        }
        raster = Raster(width: width, height: height, channels: channels, pixels: pixels)
    }
    guard let raster else { throw .corrupt(failure ?? "PNG decode failed") }
    return raster
}

/// PNG_FORMAT_RGB / PNG_FORMAT_RGBA: composite macros Swift does not import.
private let pngFormatRGB = UInt32(PNG_FORMAT_FLAG_COLOR)
/// See `pngFormatRGB`.
private let pngFormatRGBA = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)

/// libpng's error text from the simplified API's fixed message buffer.
private func pngMessage(_ image: inout png_image) -> String {
    let text = withUnsafeBytes(of: &image.message) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    return text.isEmpty ? "PNG decode failed" : text
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
