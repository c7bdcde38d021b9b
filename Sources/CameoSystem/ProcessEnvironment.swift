internal import Glibc

/// This process: its environment, id, standard error, and how it ends.
public enum SystemProcess {
    /// The environment as a dictionary (walks `environ`).
    public static var environment: [String: String] { keyValues(environ) }

    /// A NULL-terminated array of `NAME=value` C strings (`environ`, or libfcgi's request
    /// parameters) as a dictionary, copied.
    public static func keyValues(_ array: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> [String: String] {
        var values: [String: String] = [:]
        var cursor = array
        while let entry = cursor.pointee {
            let pair = String(cString: entry)
            if let equals = pair.firstIndex(of: "=") { values[String(pair[..<equals])] = String(pair[pair.index(after: equals)...]) }
            cursor += 1
        }
        return values
    }

    /// This host's name (`gethostname`), for naming this process to others (a lock's holder).
    public static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown-host" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The process id (`getpid`).
    public static var id: Int { Int(getpid()) }

    /// Writes one line to standard error. Swift 6 refuses the C `stderr` global, and a line
    /// written whole by one `write(2)` is not interleaved with other processes' lines.
    public static func writeError(_ line: String) {
        let bytes = Array((line.hasSuffix("\n") ? line : line + "\n").utf8)
        bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// Sleeps for whole seconds (`sleep(3)`).
    public static func sleep(seconds: Int) { _ = Glibc.sleep(UInt32(max(0, seconds))) }

    /// Asks the parent process (the pool's supervisor) to stop gracefully (`SIGTERM`).
    public static func terminateParent() { _ = kill(getppid(), SIGTERM) }

    /// Ends the process with `code` (`exit(3)`).
    public static func exit(_ code: Int32) -> Never { Glibc.exit(code) }
}
