public import CameoSystem
import Synchronization

/// A clock tests move by hand. Starts at the real time, so signatures and tokens made with it
/// are plausible.
public final class ManualClock: TimeSource {
    private let now: Mutex<Int>

    public init(epochSeconds: Int = SystemClock().epochSeconds) { now = Mutex(epochSeconds) }

    public var epochSeconds: Int { now.withLock { $0 } }
    public var monotonicMilliseconds: Int { now.withLock { $0 * 1000 } }

    public func advance(seconds: Int) { now.withLock { $0 += seconds } }
}
