// BootPlacement: one line of "what a loader put where" in guest-physical memory, for the VMM's --verbose
// output and `explain`. Loaders return a list of them, in address order, alongside the entry state.
import GuestMemory

public struct BootPlacement: Sendable, Equatable, CustomStringConvertible {
    /// What lies there, in words: "zero page (struct boot_params)".
    public var what: String
    public var range: AddressRange

    public init(_ what: String, _ range: AddressRange) {
        self.what = what; self.range = range
    }

    /// For a range that must be non-empty by construction (a page, a loaded image).
    init(_ what: String, base: GuestAddress, length: UInt64) {
        self.what = what
        self.range = AddressRange(base: base, length: max(length, 1))!
    }

    public var description: String {
        "\(rangeText(base: range.base.rawValue, length: range.length, width: 8)) \(what)"
    }
}
