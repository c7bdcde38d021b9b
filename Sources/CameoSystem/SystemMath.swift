internal import Glibc

/// The C math library's functions the project needs (FoundationEssentials has none).
public enum SystemMath {
    /// Base-2 logarithm (`log2(3)`).
    public static func log2(_ x: Double) -> Double { Glibc.log2(x) }
}
