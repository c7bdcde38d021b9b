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
/// allowed) to `outSize` × `outSize` with a separable Lanczos-3 filter: horizontal pass into a
/// float buffer covering only the rows the vertical pass needs, then the vertical pass. The
/// crop is fused into the weight tables, so the cropped image is never materialised. With
/// alpha, colours are premultiplied while filtering so transparent pixels (whose colour is
/// meaningless) do not bleed into visible edges.
func resampleSquare(_ source: Raster, window: SourceWindow, outSize: Int) -> Raster {
    let horizontal = FilterTable(
        sourceCount: source.width, windowStart: window.x, windowSize: window.size, outCount: outSize)
    let vertical = FilterTable(
        sourceCount: source.height, windowStart: window.y, windowSize: window.size, outCount: outSize)
    return resample(source, horizontal: horizontal, vertical: vertical)
}

/// The two filter passes. Pixels are carried as SIMD4<Float> (RGB + pad, or premultiplied
/// RGBA) so each tap is one vector multiply-add whatever the channel count.
func resample(_ source: Raster, horizontal: FilterTable, vertical: FilterTable) -> Raster {
    let channels = source.channels
    let alpha = source.hasAlpha
    let outW = horizontal.outCount
    let outH = vertical.outCount
    let rowMin = vertical.sourceMin
    let rowMax = vertical.sourceMax
    let colMin = horizontal.sourceMin
    let colMax = horizontal.sourceMax
    let rows = max(rowMax - rowMin, 0)
    let cols = max(colMax - colMin, 0)
    // FilterTable gives every output at least one tap, so this only trips on an empty source
    // or zero-sized output; answer with a blank image rather than unwrapping nil below.
    guard rows > 0, cols > 0, outW > 0, outH > 0 else {
        return Raster(width: outW, height: outH, channels: channels,
                      pixels: [UInt8](repeating: 0, count: max(outW, 0) * max(outH, 0) * channels))
    }

    // Every element is written by the horizontal pass, so skip zero-filling ~10 MB.
    var intermediate = [SIMD4<Float>](unsafeUninitializedCapacity: outW * rows) { _, count in
        count = outW * rows
    }
    var line = [SIMD4<Float>](repeating: .zero, count: cols)
    var output = [UInt8](repeating: 0, count: outW * outH * channels)

    source.pixels.withUnsafeBufferPointer { srcBuffer in
        guard let src = srcBuffer.baseAddress else { return }
        horizontal.weights.withUnsafeBufferPointer { hw in
            horizontal.starts.withUnsafeBufferPointer { hs in
                horizontal.counts.withUnsafeBufferPointer { hc in
                    intermediate.withUnsafeMutableBufferPointer { mid in
                        line.withUnsafeMutableBufferPointer { lineBuffer in
                            let lineBase = lineBuffer.baseAddress!
                            let stride = horizontal.stride
                            for r in 0..<rows {
                                // Convert the needed span of one source row to float once; each
                                // source pixel feeds several outputs.
                                var p = src + ((rowMin + r) * source.width + colMin) * channels
                                if alpha {
                                    for x in 0..<cols {
                                        let a = Float(p[3])
                                        let f = a * (1 / 255)
                                        lineBase[x] = SIMD4(Float(p[0]) * f, Float(p[1]) * f, Float(p[2]) * f, a)
                                        p += 4
                                    }
                                } else {
                                    for x in 0..<cols {
                                        lineBase[x] = SIMD4(Float(p[0]), Float(p[1]), Float(p[2]), 0)
                                        p += 3
                                    }
                                }
                                let dst = mid.baseAddress! + r * outW
                                for x in 0..<outW {
                                    let base = lineBase + (hs[x] - colMin)
                                    let w = hw.baseAddress! + x * stride
                                    var acc = SIMD4<Float>.zero
                                    for k in 0..<hc[x] { acc += base[k] * w[k] }
                                    dst[x] = acc
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    var accumulator = [SIMD4<Float>](repeating: .zero, count: outW)
    intermediate.withUnsafeBufferPointer { midBuffer in
        accumulator.withUnsafeMutableBufferPointer { accBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                let mid = midBuffer.baseAddress!
                let acc = accBuffer.baseAddress!
                var out = outBuffer.baseAddress!
                for y in 0..<outH {
                    for x in 0..<outW { acc[x] = .zero }
                    let start = vertical.starts[y] - rowMin
                    for k in 0..<vertical.counts[y] {
                        let w = vertical.weights[y * vertical.stride + k]
                        let row = mid + (start + k) * outW
                        for x in 0..<outW { acc[x] += row[x] * w }
                    }
                    if alpha {
                        for x in 0..<outW {
                            let v = acc[x]
                            let a = min(max(v.w, 0), 255)
                            if a < 0.5 {
                                out[0] = 0; out[1] = 0; out[2] = 0; out[3] = 0
                            } else {
                                let rgb = SIMD4(v.x, v.y, v.z, a) * SIMD4(255 / a, 255 / a, 255 / a, 1)
                                let c = quantize(rgb)
                                out[0] = c.x; out[1] = c.y; out[2] = c.z; out[3] = c.w
                            }
                            out += 4
                        }
                    } else {
                        for x in 0..<outW {
                            let c = quantize(acc[x])
                            out[0] = c.x; out[1] = c.y; out[2] = c.z
                            out += 3
                        }
                    }
                }
            }
        }
    }
    return Raster(width: outW, height: outH, channels: channels, pixels: output)
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
