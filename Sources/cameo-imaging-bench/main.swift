// cameo-imaging-bench: renders photos with AvatarRenderer exactly as production does (default
// settings) and reports CPU time, output sizes and peak RSS as JSON lines. A benchmark, not a
// test; deploy/bench-imaging drives it and compares it with its peers.
//
//   cameo-imaging-bench [--out DIR] [--runs N] [--warmup N] [--quality Q] [--method M] PATH...
//   cameo-imaging-bench --single PATH
//
// PATH is an image or a folder (its .jpg/.jpeg/.png/.webp files, sorted). Each photo is read
// into memory first; the timed part is `render` alone (sniff, decode, resample, encode all
// sizes), as getrusage user+sys CPU time, median of N runs after the warm-up runs. With --out
// the renditions of the last run are written as DIR/<name>-<size>.webp. `--single` renders one
// photo once in a fresh child process and reports its ru_maxrss, its peak resident set.
import CameoSystem
import Imaging

struct Options {
    var paths: [String] = []
    var out: String?
    var runs = 5
    var warmup = 1
    var quality: Float?
    var method: Int?
    var single: String?
    var singleChild: String?
}

func fail(_ message: String) -> Never {
    SystemProcess.writeError("cameo-imaging-bench: \(message)")
    SystemProcess.exit(2)
}

func parseOptions(_ args: [String]) -> Options {
    var options = Options()
    var i = 0
    func value(_ flag: String) -> String {
        i += 1
        guard i < args.count else { fail("\(flag) needs a value") }
        return args[i]
    }
    while i < args.count {
        let arg = args[i]
        switch arg {
        case "--out": options.out = value(arg)
        case "--runs":
            guard let n = Int(value(arg)), n >= 1 else { fail("--runs needs a positive integer") }
            options.runs = n
        case "--warmup":
            guard let n = Int(value(arg)), n >= 0 else { fail("--warmup needs an integer >= 0") }
            options.warmup = n
        case "--quality":
            guard let q = Float(value(arg)) else { fail("--quality needs a number") }
            options.quality = q
        case "--method":
            guard let m = Int(value(arg)) else { fail("--method needs an integer") }
            options.method = m
        case "--single": options.single = value(arg)
        case "--single-child": options.singleChild = value(arg)
        case "-h", "--help":
            print("usage: cameo-imaging-bench [--out DIR] [--runs N] [--warmup N] [--quality Q] [--method M] PATH...")
            print("       cameo-imaging-bench [--quality Q] [--method M] --single PATH")
            SystemProcess.exit(0)
        default:
            if arg.hasPrefix("--") { fail("unknown flag \(arg)") }
            options.paths.append(arg)
        }
        i += 1
    }
    return options
}

func readFile(_ path: String) -> [UInt8] {
    do {
        return try FileSystem.read(path, limit: 1 << 30)
    } catch {
        fail("cannot read \(path): \(error)")
    }
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    FileSystem.remove(path)
    do {
        try FileSystem.writeNew(bytes, to: path, mode: 0o644)
    } catch {
        fail("cannot write \(path): \(error)")
    }
}

func isDirectory(_ path: String) -> Bool {
    let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
    let parent = trimmed.contains("/") ? String(trimmed[..<trimmed.lastIndex(of: "/")!]) : "."
    let name = baseName(trimmed)
    return Directory.entries(of: parent.isEmpty ? "/" : parent).contains { $0.name == name && $0.kind == .directory }
}

let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "webp"]

func fileExtension(_ name: String) -> String {
    guard let dot = name.lastIndex(of: ".") else { return "" }
    return name[name.index(after: dot)...].lowercased()
}

func baseName(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}

/// Image files of a folder, sorted by name.
func listImages(_ folder: String) -> [String] {
    let prefix = folder.hasSuffix("/") ? String(folder.dropLast()) : folder
    let names = Directory.entries(of: prefix).map(\.name).filter { !$0.hasPrefix(".") && imageExtensions.contains(fileExtension($0)) }
    if names.isEmpty && !isDirectory(folder) { fail("cannot list \(folder)") }
    return names.sorted().map { prefix + "/" + $0 }
}

/// User + system CPU time of this process, in milliseconds.
func cpuMilliseconds() -> Double { ResourceUsage.current.cpuSeconds * 1000 }

/// Monotonic wall clock, in milliseconds.
func wallMilliseconds() -> Double { Double(SystemClock().monotonicNanoseconds) / 1_000_000 }

/// Peak resident set size of this process so far, in KiB (Linux reports ru_maxrss in KiB).
func peakRSSKiB() -> Int { ResourceUsage.current.maxResidentKiB }

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/// A JSON string literal (names are file names; escape what JSON requires).
func json(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20: out += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(width - count, 0)) + self
    }
}

func fixed(_ value: Double, _ digits: Int = 3) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return "\(rounded)"
}

func makeRenderer(_ options: Options) -> AvatarRenderer {
    let defaults = AvatarRenderer(limits: ImageLimits())
    return AvatarRenderer(
        limits: ImageLimits(), sizes: defaults.sizes,
        quality: options.quality ?? defaults.quality, method: options.method ?? defaults.method)
}

func render(_ renderer: AvatarRenderer, _ bytes: [UInt8], _ path: String) -> AvatarRenditions {
    do {
        return try renderer.render(bytes, crop: nil)
    } catch {
        fail("\(path): \(error)")
    }
}

let options = parseOptions(Array(CommandLine.arguments.dropFirst()))
let renderer = makeRenderer(options)

/// `--single`: the render runs in a child process spawned from this small one, because Linux
/// carries ru_maxrss across fork and exec: a child of a big parent (a Python driver, say)
/// would start out reporting the parent's size. The child inherits only this process's few MB.
func spawnSingleChild(_ path: String) -> Never {
    var arguments: [String] = []
    if let quality = options.quality { arguments += ["--quality", "\(quality)"] }
    if let method = options.method { arguments += ["--method", "\(method)"] }
    arguments += ["--single-child", path]
    SystemProcess.exit(SystemProcess.runSelf(arguments: arguments) == 0 ? 0 : 1)
}

if let path = options.single { spawnSingleChild(path) }

if let path = options.singleChild {
    let bytes = readFile(path)
    let before = peakRSSKiB()
    let started = cpuMilliseconds()
    let result = render(renderer, bytes, path)
    let cpu = cpuMilliseconds() - started
    let peak = peakRSSKiB()
    let total = result.webp.values.reduce(0) { $0 + $1.count }
    print("{\"photo\": \(json(baseName(path))), \"maxrss_kib\": \(peak), \"maxrss_before_render_kib\": \(before), "
        + "\"maxrss_mb\": \(fixed(Double(peak) / 1024, 2)), \"cpu_ms\": \(fixed(cpu)), \"bytes_total\": \(total)}")
    SystemProcess.exit(0)
}

var photos: [String] = []
for path in options.paths {
    if isDirectory(path) { photos += listImages(path) } else { photos.append(path) }
}
if photos.isEmpty { fail("no photos given (pass files or a folder)") }
if let out = options.out {
    do { try FileSystem.makeDirectory(out) } catch { fail("cannot create \(out): \(error)") }
}

for path in photos {
    let bytes = readFile(path)
    for _ in 0..<options.warmup { _ = render(renderer, bytes, path) }
    var cpu: [Double] = []
    var wall: [Double] = []
    var last: AvatarRenditions?
    for _ in 0..<options.runs {
        let cpuStart = cpuMilliseconds()
        let wallStart = wallMilliseconds()
        let result = render(renderer, bytes, path)
        wall.append(wallMilliseconds() - wallStart)
        cpu.append(cpuMilliseconds() - cpuStart)
        last = result
    }
    guard let last else { continue }
    let name = baseName(path)
    if let out = options.out {
        let stem = name.split(separator: ".", omittingEmptySubsequences: false).dropLast().joined(separator: ".")
        for (size, webp) in last.webp { writeFile("\(out)/\(stem)-\(size).webp", webp) }
    }
    let sizes = last.webp.keys.sorted(by: >)
    let bytesJSON = sizes.map { "\"\($0)\": \(last.webp[$0]!.count)" }.joined(separator: ", ")
    let cpuJSON = cpu.map { fixed($0) }.joined(separator: ", ")
    print("{\"photo\": \(json(name)), \"format\": \(json(last.format.rawValue)), "
        + "\"source\": [\(last.sourceWidth), \(last.sourceHeight)], \"runs\": \(options.runs), "
        + "\"cpu_ms\": \(fixed(median(cpu))), \"cpu_ms_runs\": [\(cpuJSON)], \"wall_ms\": \(fixed(median(wall))), "
        + "\"bytes\": {\(bytesJSON)}, \"quality\": \(renderer.quality), \"method\": \(renderer.method)}")
}
