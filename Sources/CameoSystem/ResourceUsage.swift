internal import Glibc

/// CPU time and peak memory of this process (`getrusage(RUSAGE_SELF)`), for benchmarks.
public struct ResourceUsage: Sendable {
    /// User plus system CPU time, seconds.
    public let cpuSeconds: Double
    /// Peak resident set size, KiB (`ru_maxrss`).
    public let maxResidentKiB: Int

    public static var current: ResourceUsage {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let seconds = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return ResourceUsage(cpuSeconds: seconds, maxResidentKiB: usage.ru_maxrss)
    }
}

extension SystemProcess {
    /// Runs this executable again (`/proc/self/exe`, `posix_spawn`) with `arguments` and the
    /// same environment, waits for it, and returns its exit status (-1 when it could not start
    /// or did not exit normally).
    public static func runSelf(arguments: [String]) -> Int32 {
        let argv = (["/proc/self/exe"] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/proc/self/exe", nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS are macros Swift does not import.
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : -1
    }
}
