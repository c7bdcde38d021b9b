internal import CJPEGShim
internal import CLCMS2
internal import CLCMS2Shim
internal import CPNG

// Encoders used only to generate test inputs in code (reachable through @testable import),
// so the test suite needs no binary fixtures. Production code never writes JPEG or PNG.

/// Encodes packed pixels as JPEG through the C shim. `components`: 1 gray, 3 RGB, 4 CMYK
/// (stored Adobe-inverted YCCK, so pass inverted ink values as Photoshop would).
func encodeJPEGForTesting(
    _ pixels: [UInt8], width: Int, height: Int, components: Int, quality: Int = 90,
    progressive: Bool = false
) throws(ImagingError) -> [UInt8] {
    guard width > 0, height > 0, pixels.count == width * height * components else {
        throw .encodeFailed("pixel buffer does not match \(width)x\(height)x\(components)")
    }
    // Worst case JPEG at quality 100 stays well under twice the raw size plus headers.
    let capacity = pixels.count * 2 + 65_536
    var message = [CChar](repeating: 0, count: Int(CAMEO_JPEG_MESSAGE_SIZE))
    var size = 0
    var status: Int32 = -1
    let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { out, count in
        status = pixels.withUnsafeBufferPointer { src in
            cameo_jpeg_encode(
                src.baseAddress, Int32(width), Int32(height), Int32(components), Int32(quality),
                progressive ? 1 : 0, out.baseAddress, capacity, &size, &message)
        }
        count = status == Int32(CAMEO_JPEG_OK) ? size : 0
    }
    guard status == Int32(CAMEO_JPEG_OK) else {
        let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw .encodeFailed("JPEG encode failed (\(status)): \(text)")
    }
    return bytes
}

/// Encodes an RGB or RGBA raster as an 8-bit PNG with libpng's simplified write API.
func encodePNGForTesting(_ raster: Raster) throws(ImagingError) -> [UInt8] {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(raster.width)
    image.height = UInt32(raster.height)
    image.format = UInt32(PNG_FORMAT_FLAG_COLOR) | (raster.hasAlpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
    defer { png_image_free(&image) }
    var size = 0
    // First call with a nil buffer asks for the size; the second writes.
    let sized = raster.pixels.withUnsafeBufferPointer { px in
        png_image_write_to_memory(&image, nil, &size, 0, px.baseAddress, 0, nil)
    }
    guard sized != 0, size > 0 else { throw .encodeFailed("PNG size query failed") }
    var ok: Int32 = 0
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { out, count in
        ok = raster.pixels.withUnsafeBufferPointer { px in
            png_image_write_to_memory(&image, out.baseAddress, &size, 0, px.baseAddress, 0, nil)
        }
        count = ok != 0 ? size : 0
    }
    guard ok != 0 else { throw .encodeFailed("PNG encode failed") }
    return bytes
}

/// Decodes any supported image to its raster (no orientation, no limits beyond the given
/// ones); lets tests look at rendered WebP pixels.
func decodeForTesting(_ bytes: [UInt8], limits: ImageLimits = ImageLimits(maxSide: 8192, maxPixels: 64_000_000))
    throws(ImagingError) -> Raster
{
    let header = try readHeader(bytes, limits: limits)
    switch header.format {
    case .jpeg: return try decodeJPEG(bytes, width: header.width, height: header.height, scaleDenominator: 1)
    case .png: return try decodePNG(bytes, width: header.width, height: header.height, hasAlpha: readPNGColours(bytes).hasAlpha)
    case .webp: return try decodeWebP(bytes, width: header.width, height: header.height)
    }
}

/// Opens `profile` in a littlecms context with a budget of `budget` bytes and reads its A2B0
/// table, as a conversion does: whether the table could be read, and the most memory the
/// context held meanwhile. Lets tests see what the budget stops.
func readProfileTableForTesting(_ profile: [UInt8], budget: Int) -> (read: Bool, peakBytes: Int) {
    guard let context = cameo_lcms_bounded_context(budget) else { return (false, 0) }
    defer { cameo_lcms_delete_context(context) }
    guard let opened = profile.withUnsafeBytes({ cmsOpenProfileFromMemTHR(context, $0.baseAddress, UInt32($0.count)) }) else {
        return (false, cameo_lcms_context_peak(context))
    }
    let read = cmsReadTag(opened, cmsSigAToB0Tag) != nil
    cmsCloseProfile(opened)
    return (read, cameo_lcms_context_peak(context))
}
