import Testing

@testable import Imaging

/// littlecms allocates what a profile's table declares before it reads it. These tests show
/// that the budget, not littlecms, is what stops a tiny profile from taking the worker's memory.
@Suite("Colour profile memory budget")
struct ColourBudgetTests {
    /// An ICC v2 CMYK → Lab profile whose only tag is a lut16 (mft2) table of `grid`⁴ nodes, of
    /// which it holds `heldNodes` (a real profile holds all of them).
    static func cmykProfile(grid: UInt8, heldNodes: Int) -> [UInt8] {
        func be32(_ v: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
        func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }
        let identity = [1, 0, 0, 0, 1, 0, 0, 0, 1].flatMap { be32(UInt32($0) << 16) }
        let ramp = be16(0) + be16(0xFFFF)
        var table = Array("mft2".utf8) + [0, 0, 0, 0, 4, 3, grid, 0] + identity + be16(2) + be16(2)
        table += Array([[UInt8]](repeating: ramp, count: 4).joined())
        table += [UInt8](repeating: 0x80, count: heldNodes * 3 * 2)
        table += Array([[UInt8]](repeating: ramp, count: 3).joined())
        let tableOffset = 128 + 4 + 12
        let size = tableOffset + table.count
        var header = be32(UInt32(size)) + Array("none".utf8) + [2, 0x10, 0, 0] + Array("prtrCMYKLab ".utf8)
        header += [UInt8](repeating: 0, count: 12) + Array("acsp".utf8)
        header += [UInt8](repeating: 0, count: 128 - header.count)
        let tags = be32(1) + Array("A2B0".utf8) + be32(UInt32(tableOffset)) + be32(UInt32(table.count))
        return header + tags + table
    }

    @Test("a profile declaring a 78 MB table is refused inside the budget, and would take it without")
    func declaredTableIsRefused() {
        let bomb = Self.cmykProfile(grid: 60, heldNodes: 0)  // 60⁴ × 3 × 2 bytes declared
        #expect(bomb.count < 400)
        let bounded = readProfileTableForTesting(bomb, budget: ColourManagement.memoryBudget)
        #expect(!bounded.read)
        #expect(bounded.peakBytes <= ColourManagement.memoryBudget)
        // The control: with room to spare littlecms does allocate what the table declares.
        let roomy = readProfileTableForTesting(bomb, budget: 1 << 30)
        #expect(roomy.peakBytes >= 60 * 60 * 60 * 60 * 3 * 2)
        // And through the conversion the renderer uses: ignored, not fatal.
        let (conversion, outcome) = ColourManagement.conversion(from: .profile(bomb), input: .cmyk8)
        #expect(conversion == nil)
        guard case .ignored = outcome else {
            Issue.record("expected the profile to be ignored, got \(outcome)")
            return
        }
    }

    @Test("a real press profile's table (17⁴ nodes, 500 KB) fits the budget and converts")
    func realTableFits() {
        let press = Self.cmykProfile(grid: 17, heldNodes: 17 * 17 * 17 * 17)
        let bounded = readProfileTableForTesting(press, budget: ColourManagement.memoryBudget)
        #expect(bounded.read)
        let (conversion, outcome) = ColourManagement.conversion(from: .profile(press), input: .cmyk8)
        #expect(conversion != nil)
        #expect(outcome == .converted("without a name"))
    }
}
