#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Precomputed Lanczos-3 weights for one axis: for each output pixel, the first source pixel
/// it reads and a normalised run of weights. Computing these once per axis (not per pixel row)
/// is what makes the separable filter cheap.
struct FilterTable {
    /// Number of output pixels.
    let outCount: Int
    /// Weights per output pixel in `weights` (the widest run; shorter runs are zero-padded).
    let stride: Int
    /// First source index read by each output pixel.
    let starts: [Int]
    /// Number of source pixels read by each output pixel.
    let counts: [Int]
    /// `outCount × stride` weights, each run summing to 1.
    let weights: [Float]

    /// Lowest source index any output reads.
    var sourceMin: Int { starts.min() ?? 0 }
    /// One past the highest source index any output reads.
    var sourceMax: Int { zip(starts, counts).map { $0 + $1 }.max() ?? 0 }

    /// Weights mapping the source span `[windowStart, windowStart + windowSize)` (fractional
    /// in general: the centred crop and DCT-scaled sources both start between pixels) onto
    /// `outCount` pixels. Taps outside `0..<sourceCount` are dropped and the rest renormalised,
    /// so edges neither darken nor need padding. When shrinking, the kernel is stretched by the
    /// scale factor so it low-passes before decimation (no aliasing/moire).
    init(sourceCount: Int, windowStart: Double, windowSize: Double, outCount: Int) {
        let scale = windowSize / Double(outCount)
        let filterScale = max(scale, 1)
        let support = 3 * filterScale
        let stride = Int((2 * support).rounded(.up)) + 2
        var starts = [Int](repeating: 0, count: outCount)
        var counts = [Int](repeating: 0, count: outCount)
        var weights = [Float](repeating: 0, count: outCount * stride)
        var run = [Double](repeating: 0, count: stride)
        for i in 0..<outCount {
            let center = windowStart + (Double(i) + 0.5) * scale
            // Pixel j's centre is j + 0.5; it contributes while |j + 0.5 - center| < support.
            var lo = max(Int((center - support - 0.5).rounded(.down)), 0)
            var hi = min(Int((center + support - 0.5).rounded(.up)) + 1, sourceCount)
            hi = min(hi, lo + stride)
            var total = 0.0
            for j in lo..<max(hi, lo) {
                let w = lanczos3((Double(j) + 0.5 - center) / filterScale)
                run[j - lo] = w
                total += w
            }
            if hi <= lo || total == 0 {
                // Degenerate (window fully outside, or all taps zero): nearest pixel.
                let nearest = min(max(Int(center.rounded(.down)), 0), max(sourceCount - 1, 0))
                lo = nearest
                hi = nearest + 1
                run[0] = 1
                total = 1
            }
            // Trim zero-weight taps at both ends so the inner loops do no useless work.
            var first = 0, last = hi - lo - 1
            while first < last, run[first] == 0 { first += 1 }
            while last > first, run[last] == 0 { last -= 1 }
            starts[i] = lo + first
            counts[i] = last - first + 1
            for k in first...last {
                weights[i * stride + k - first] = Float(run[k] / total)
            }
        }
        self.outCount = outCount
        self.stride = stride
        self.starts = starts
        self.counts = counts
        self.weights = weights
    }
}

/// The Lanczos kernel with a = 3: sinc(x)·sinc(x/3) on |x| < 3.
@inline(__always)
func lanczos3(_ x: Double) -> Double {
    let ax = abs(x)
    if ax < 1e-9 { return 1 }
    if ax >= 3 { return 0 }
    let px = Double.pi * x
    return 3 * sin(px) * sin(px / 3) / (px * px)
}

/// Resamples the square `window` of `source` (source pixel coordinates, fractional origin
/// allowed) to `outSize` × `outSize` with a separable Lanczos-3 filter, vertical pass then
/// horizontal, row by row. The crop is fused into the weight tables, so the cropped image is
/// never materialised, and only the source rows in reach of one output row are ever held as
/// floats. With alpha, colours are premultiplied while filtering so transparent pixels (whose
/// colour is meaningless) do not bleed into visible edges.
func resampleSquare(_ source: Raster, window: SourceWindow, outSize: Int) -> Raster {
    let horizontal = FilterTable(
        sourceCount: source.width, windowStart: window.x, windowSize: window.size, outCount: outSize)
    let vertical = FilterTable(
        sourceCount: source.height, windowStart: window.y, windowSize: window.size, outCount: outSize)
    return resample(source, horizontal: horizontal, vertical: vertical)
}

/// The two filter passes, vertical first. Source rows are converted to float once each, into a
/// small ring holding just the rows the current output row reads (never the whole image), and
/// the vertical pass runs along those contiguous rows 16 floats at a time with one weight per
/// row, which vectorises well and needs no padding lane for RGB. The horizontal pass then
/// filters that single row of floats, one SIMD4 (RGB + an ignored lane, or premultiplied RGBA)
/// per tap, and quantises straight into the output.
func resample(_ source: Raster, horizontal: FilterTable, vertical: FilterTable) -> Raster {
    let channels = source.channels
    let alpha = source.hasAlpha
    let outW = horizontal.outCount
    let outH = vertical.outCount
    let rowMin = vertical.sourceMin
    let colMin = horizontal.sourceMin
    let rows = max(vertical.sourceMax - rowMin, 0)
    let cols = max(horizontal.sourceMax - colMin, 0)
    // FilterTable gives every output at least one tap, so this only trips on an empty source
    // or zero-sized output; answer with a blank image rather than unwrapping nil below.
    guard rows > 0, cols > 0, outW > 0, outH > 0 else {
        return Raster(width: outW, height: outH, channels: channels,
                      pixels: [UInt8](repeating: 0, count: max(outW, 0) * max(outH, 0) * channels))
    }

    let span = cols * channels
    // A SIMD4 load at the last RGB pixel of a row reads one float past the span.
    let rowFloats = span + 4
    let ringRows = vertical.counts.max() ?? 1
    let ring = UnsafeMutablePointer<Float>.allocate(capacity: ringRows * rowFloats)
    defer { ring.deallocate() }
    var ringHolds = [Int](repeating: -1, count: ringRows)  // source row held by each slot
    let tapRows = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: ringRows)
    defer { tapRows.deallocate() }
    let line = UnsafeMutablePointer<Float>.allocate(capacity: rowFloats)  // one vertically filtered row
    line.initialize(repeating: 0, count: rowFloats)
    defer { line.deallocate() }

    let output = [UInt8](unsafeUninitializedCapacity: outW * outH * channels) { outBuffer, initialized in
        source.pixels.withUnsafeBufferPointer { srcBuffer in
            vertical.weights.withUnsafeBufferPointer { vw in
                horizontal.weights.withUnsafeBufferPointer { hw in
                    let src = srcBuffer.baseAddress!
                    var out = outBuffer.baseAddress!
                    for y in 0..<outH {
                        // Gather the rows this output reads. Runs move forward, so each source
                        // row is usually converted once; a run never exceeds the ring, so its
                        // rows never collide.
                        let first = vertical.starts[y]
                        let count = vertical.counts[y]
                        for k in 0..<count {
                            let row = first + k
                            let slot = (row - rowMin) % ringRows
                            let dst = ring + slot * rowFloats
                            if ringHolds[slot] != row {
                                ringHolds[slot] = row
                                convertRow(src + (row * source.width + colMin) * channels, into: dst,
                                           count: span, premultiply: alpha)
                            }
                            tapRows[k] = UnsafePointer(dst)
                        }
                        verticalPass(tapRows, weights: vw.baseAddress! + y * vertical.stride, taps: count,
                                     into: line, count: span)

                        for x in 0..<outW {
                            var p = line + (horizontal.starts[x] - colMin) * channels
                            let w = hw.baseAddress! + x * horizontal.stride
                            var acc = SIMD4<Float>.zero
                            for k in 0..<horizontal.counts[x] {
                                acc += UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self) * w[k]
                                p += channels
                            }
                            if alpha {
                                let a = min(max(acc.w, 0), 255)
                                if a < 0.5 {
                                    out[0] = 0; out[1] = 0; out[2] = 0; out[3] = 0
                                } else {
                                    let c = quantize(SIMD4(acc.x, acc.y, acc.z, a) * SIMD4(255 / a, 255 / a, 255 / a, 1))
                                    out[0] = c.x; out[1] = c.y; out[2] = c.z; out[3] = c.w
                                }
                                out += 4
                            } else {
                                let c = quantize(acc)  // the fourth lane is the next pixel's red
                                out[0] = c.x; out[1] = c.y; out[2] = c.z
                                out += 3
                            }
                        }
                    }
                }
            }
        }
        initialized = outBuffer.count
    }
    return Raster(width: outW, height: outH, channels: channels, pixels: output)
}

/// Converts `count` bytes of one source row to float; with alpha (RGBA), colours are
/// premultiplied so transparent pixels (whose colour is meaningless) carry no weight.
@inline(__always)
private func convertRow(_ src: UnsafePointer<UInt8>, into dst: UnsafeMutablePointer<Float>, count: Int,
                        premultiply: Bool) {
    // A plain loop over contiguous bytes: the compiler turns it into wide zero-extend + convert.
    for i in 0..<count { dst[i] = Float(src[i]) }
    guard premultiply else { return }
    var p = dst
    for _ in 0..<(count / 4) {
        let f = p[3] * (1 / 255)
        p[0] *= f; p[1] *= f; p[2] *= f
        p += 4
    }
}

/// `line[i] = Σ weights[k] · rows[k][i]` for i in 0..<count: 16 floats per step with the
/// accumulator in registers across all taps, then 4, then single floats.
@inline(__always)
private func verticalPass(_ rows: UnsafePointer<UnsafePointer<Float>>, weights: UnsafePointer<Float>,
                          taps: Int, into line: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        var acc = SIMD16<Float>.zero
        for k in 0..<taps {
            acc += UnsafeRawPointer(rows[k] + i).loadUnaligned(as: SIMD16<Float>.self) * weights[k]
        }
        UnsafeMutableRawPointer(line + i).storeBytes(of: acc, as: SIMD16<Float>.self)
        i += 16
    }
    while i + 4 <= count {
        var acc = SIMD4<Float>.zero
        for k in 0..<taps {
            acc += UnsafeRawPointer(rows[k] + i).loadUnaligned(as: SIMD4<Float>.self) * weights[k]
        }
        UnsafeMutableRawPointer(line + i).storeBytes(of: acc, as: SIMD4<Float>.self)
        i += 4
    }
    while i < count {
        var acc: Float = 0
        for k in 0..<taps { acc += rows[k][i] * weights[k] }
        line[i] = acc
        i += 1
    }
}

/// Clamps to 0...255 and rounds to nearest. Adding 0.5 and truncating is exact rounding for
/// non-negative values and, unlike `rounded()`, compiles to plain conversions instead of libm
/// calls (Lanczos lobes overshoot, so the clamp is required). Scalar conversions on purpose:
/// the generic SIMD integer-from-float initialisers are not specialised and were 10× slower.
@inline(__always)
private func quantize(_ v: SIMD4<Float>) -> SIMD4<UInt8> {
    let c = v.clamped(lowerBound: .zero, upperBound: SIMD4(repeating: 255)) + 0.5
    return SIMD4(UInt8(c.x), UInt8(c.y), UInt8(c.z), UInt8(c.w))
}
