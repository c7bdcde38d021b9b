public import CameoSystem

/// How the long-running binaries (cameo-fcgi, cameo-metrics) start: `--version` answers and
/// exits; otherwise the config is read once, and a process that cannot start says why on
/// standard error, pauses (a supervisor that restarts it at once would otherwise spin a core)
/// and exits, with 78 for a config it cannot run.
public struct ProgramStart {
    public let name: String
    /// Runs just before a config failure exits (cameo-fcgi stops its pool there).
    let onConfigFailure: () -> Void

    public init(name: String, onConfigFailure: @escaping () -> Void = {}) {
        self.name = name
        self.onConfigFailure = onConfigFailure
    }

    public func fail(_ message: String, code: Int32) -> Never {
        SystemProcess.writeError("\(name): \(message)")
        if code == ConfigError.exitStatus { onConfigFailure() }
        SystemProcess.sleep(seconds: 1)
        SystemProcess.exit(code)
    }

    /// The config of `CAMEO_CONFIG` and the environment, after `--version` was looked for.
    public func config() -> Config {
        if CommandLine.arguments.dropFirst().contains("--version") {
            print("\(name) \(CameoVersion.current)")
            SystemProcess.exit(0)
        }
        do {
            return try Config.load(environment: SystemProcess.environment)
        } catch {
            fail(error.description, code: ConfigError.exitStatus)  // EX_CONFIG: systemd and multiwatch should not spin on this
        }
    }
}
