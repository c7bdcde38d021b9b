internal import CWebP

/// Encodes `raster` as lossy WebP with libwebp's advanced API. Nothing but the image is
/// written (no EXIF/ICC/XMP chunks), so camera and GPS metadata never reach the public file.
/// RGBA rasters keep their alpha (lossless-quality alpha plane); RGB ones are encoded opaque.
func encodeWebP(_ raster: Raster, quality: Float, method: Int) throws(ImagingError) -> [UInt8] {
    var config = WebPConfig()
    guard WebPConfigInit(&config) != 0 else { throw .encodeFailed("libwebp version mismatch") }
    config.quality = min(max(quality, 0), 100)
    config.method = Int32(min(max(method, 0), 6))
    // Avatars are small; alpha edges show, so keep the alpha plane at full quality.
    config.alpha_quality = 100
    // exact = 0 lets libwebp flatten RGB under fully transparent pixels: smaller, invisible.
    config.exact = 0
    guard WebPValidateConfig(&config) != 0 else { throw .encodeFailed("invalid WebP config") }

    var picture = WebPPicture()
    guard WebPPictureInit(&picture) != 0 else { throw .encodeFailed("libwebp version mismatch") }
    defer { WebPPictureFree(&picture) }
    picture.width = Int32(raster.width)
    picture.height = Int32(raster.height)
    let stride = Int32(raster.width * raster.channels)
    let imported = raster.pixels.withUnsafeBufferPointer { px in
        raster.hasAlpha
            ? WebPPictureImportRGBA(&picture, px.baseAddress, stride)
            : WebPPictureImportRGB(&picture, px.baseAddress, stride)
    }
    guard imported != 0 else { throw .encodeFailed("WebP import failed (out of memory?)") }

    var writer = WebPMemoryWriter()
    WebPMemoryWriterInit(&writer)
    defer { WebPMemoryWriterClear(&writer) }
    let ok = withUnsafeMutablePointer(to: &writer) { writerPointer in
        picture.writer = WebPMemoryWrite
        picture.custom_ptr = UnsafeMutableRawPointer(writerPointer)
        return WebPEncode(&config, &picture)
    }
    guard ok != 0, let mem = writer.mem, writer.size > 0 else {
        throw .encodeFailed("WebP encode failed (error \(picture.error_code.rawValue))")
    }
    return Array(UnsafeBufferPointer(start: mem, count: writer.size))
}
