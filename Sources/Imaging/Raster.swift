/// A decoded 8-bit image: packed RGB (3 channels) or straight (non-premultiplied) RGBA (4),
/// rows without padding. Internal: the public API only ever hands out encoded bytes.
struct Raster: Sendable {
    /// Width in pixels.
    var width: Int
    /// Height in pixels.
    var height: Int
    /// 3 for RGB, 4 for RGBA.
    var channels: Int
    /// width × height × channels bytes, row after row.
    var pixels: [UInt8]

    /// True when the pixels carry an alpha channel.
    var hasAlpha: Bool { channels == 4 }

    /// Returns the image as displayed for EXIF orientation `orientation` (1...8), i.e. with the
    /// flip/rotation the tag asks for applied. The renderer only calls this on small, already
    /// resampled squares, which is why a plain per-pixel remap is fast enough.
    func oriented(_ orientation: Int) -> Raster {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height, c = channels
        let ow = orientation >= 5 ? h : w
        let oh = orientation >= 5 ? w : h
        var out = [UInt8](repeating: 0, count: ow * oh * c)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<oh {
                    for x in 0..<ow {
                        // Stored pixel shown at displayed (x, y); see the EXIF 2.3 table.
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - x, y)
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                        case 4: (sx, sy) = (x, h - 1 - y)
                        case 5: (sx, sy) = (y, x)
                        case 6: (sx, sy) = (y, h - 1 - x)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                        default: (sx, sy) = (w - 1 - y, x)  // 8
                        }
                        let s = (sy * w + sx) * c
                        let d = (y * ow + x) * c
                        for k in 0..<c { dst[d + k] = src[s + k] }
                    }
                }
            }
        }
        return Raster(width: ow, height: oh, channels: c, pixels: out)
    }
}

/// A rectangle with fractional origin in source pixel coordinates; the centred default crop
/// starts at half pixels when width − height is odd, and the filter honours that exactly.
struct SourceWindow: Equatable {
    /// Left edge in source pixels.
    var x: Double
    /// Top edge in source pixels.
    var y: Double
    /// Side of the square in source pixels.
    var size: Double

    /// Maps a square in oriented (displayed) coordinates back to the stored image of size
    /// `width` × `height`. Orientation is a flip/transpose, so a square stays a square and only
    /// its origin moves.
    static func fromOriented(
        x: Double, y: Double, size s: Double, orientation: Int, width w: Double, height h: Double
    ) -> SourceWindow {
        switch orientation {
        case 2: SourceWindow(x: w - x - s, y: y, size: s)
        case 3: SourceWindow(x: w - x - s, y: h - y - s, size: s)
        case 4: SourceWindow(x: x, y: h - y - s, size: s)
        case 5: SourceWindow(x: y, y: x, size: s)
        case 6: SourceWindow(x: y, y: h - x - s, size: s)
        case 7: SourceWindow(x: w - y - s, y: h - x - s, size: s)
        case 8: SourceWindow(x: w - y - s, y: x, size: s)
        default: SourceWindow(x: x, y: y, size: s)
        }
    }
}
