/// Size limits checked against an image header before any pixel memory is allocated.
public struct ImageLimits: Sendable, Equatable {
    /// Largest allowed width or height, in stored pixels (spec default 2048).
    public var maxSide: Int
    /// Largest allowed width × height (spec default 4.2 MP); catches pixel bombs that stay
    /// within the per-side limit.
    public var maxPixels: Int

    /// Creates limits; the defaults are the spec's (2048 px per side, 4.2 MP).
    public init(maxSide: Int = 2048, maxPixels: Int = 4_200_000) {
        self.maxSide = maxSide
        self.maxPixels = maxPixels
    }

    /// Throws when a header's size breaks these limits. Per-side is checked first so that the
    /// user gets the more specific "bad_dimensions" reason for 60000×60000.
    func check(width: Int, height: Int) throws(ImagingError) {
        guard width > 0, height > 0 else {
            throw .corrupt("image has zero width or height")
        }
        if width > maxSide || height > maxSide {
            throw .dimensionsTooLarge(width: width, height: height, maxSide: maxSide)
        }
        // Both sides are <= maxSide here, so the product cannot overflow for sane limits; use
        // the overflow-reporting multiply anyway because limits come from configuration.
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        if overflow || pixels > maxPixels {
            throw .pixelBomb(pixels: overflow ? Int.max : pixels, maxPixels: maxPixels)
        }
    }
}

/// What the header says about an image, read without decoding pixels.
public struct ImageHeader: Sendable, Equatable {
    /// Format identified by magic bytes.
    public let format: ImageFormat
    /// Stored width in pixels (before EXIF orientation; for animations the canvas width).
    public let width: Int
    /// Stored height in pixels (before EXIF orientation; for animations the canvas height).
    public let height: Int
    /// EXIF orientation 1...8; 1 when there is no EXIF or the value is invalid.
    public let exifOrientation: Int
    /// True for animated WebP (and animated PNG); the renderer uses the first frame only.
    public let isAnimated: Bool

    /// Width after applying the EXIF orientation (orientations 5...8 swap the sides); crop
    /// rectangles from clients are in this coordinate system.
    public var orientedWidth: Int { exifOrientation >= 5 ? height : width }
    /// Height after applying the EXIF orientation.
    public var orientedHeight: Int { exifOrientation >= 5 ? width : height }
}

/// Why an image could not be read or processed. Cases map one to one onto the spec's reject
/// reasons (bad_type, bad_dimensions, pixel_bomb, corrupt) plus client and encoder faults.
public enum ImagingError: Error, Equatable, Sendable {
    /// Not JPEG, PNG or WebP by magic bytes.
    case unsupportedFormat
    /// A side is larger than `maxSide`.
    case dimensionsTooLarge(width: Int, height: Int, maxSide: Int)
    /// width × height is larger than `maxPixels`.
    case pixelBomb(pixels: Int, maxPixels: Int)
    /// Undecodable, truncated or damaged data (libjpeg warnings count as damage). The text is
    /// the library's message, for logs; never show it to clients verbatim.
    case corrupt(String)
    /// The client's crop rectangle is empty or leaves the (oriented) image.
    case badCrop(String)
    /// The WebP encoder failed or the renderer was configured with unusable sizes.
    case encodeFailed(String)
}

/// A square crop in oriented-image pixel coordinates (after EXIF orientation), as the client
/// saw the image in a browser.
public struct CropRect: Sendable, Equatable {
    /// Left edge, in pixels from the oriented image's left.
    public var x: Int
    /// Top edge, in pixels from the oriented image's top.
    public var y: Int
    /// Side length of the square, in pixels.
    public var size: Int

    /// Creates a crop square.
    public init(x: Int, y: Int, size: Int) {
        self.x = x
        self.y = y
        self.size = size
    }
}

/// The WebP derivatives of one upload.
public struct AvatarRenditions: Sendable {
    /// Stored width of the source image (before orientation), for `media_files.width`.
    public let sourceWidth: Int
    /// Stored height of the source image (before orientation), for `media_files.height`.
    public let sourceHeight: Int
    /// Source format found by sniffing.
    public let format: ImageFormat
    /// Output side length -> encoded WebP bytes, one entry per configured size.
    public let webp: [Int: [UInt8]]
    /// What colour management did, for the log: converted from a profile, or ignored one
    /// (broken, hostile, too large). Nil when the source had none, or an sRGB one.
    public var colourNote: String? = nil
}
