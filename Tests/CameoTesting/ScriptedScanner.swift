public import CameoService
public import Scanning
import Synchronization

/// A virus scanner whose answer the test sets: clean, infected, down (no verdict), or external
/// (the verdict comes later by callback). Counts its scans.
public final class ScriptedScanner: VirusScanner {
    public enum Answer: Sendable, Equatable {
        case clean
        case infected(String)
        case down
        case external
    }

    private let state = Mutex<(answer: Answer, scans: Int)>((.clean, 0))

    public init(_ answer: Answer = .clean) { state.withLock { $0.answer = answer } }

    public var answer: Answer {
        get { state.withLock { $0.answer } }
        set { state.withLock { $0.answer = newValue } }
    }

    public var scans: Int { state.withLock { $0.scans } }

    public struct Down: Error {}

    public func scan(_ bytes: [UInt8], mediaID: String) throws -> ScanVerdict? {
        let answer = state.withLock { state in
            state.scans += 1
            return state.answer
        }
        switch answer {
        case .clean: return .clean
        case .infected(let name): return .infected(signature: name)
        case .down: throw Down()
        case .external: return nil
        }
    }

    public func healthStatus() -> String {
        switch answer {
        case .down: "down"
        case .external: "external"
        default: "up"
        }
    }
}
