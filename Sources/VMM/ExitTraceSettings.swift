// ExitTraceSettings: what `--trace-exits` prints, from the words after `--trace-exits=`.
//
//   --trace-exits                 every exit, consecutive identical ones folded, then the table
//   --trace-exits=summary         the closing table only (no line per exit: the timings stay close to an untraced run's)
//   --trace-exits=all             one line per exit, nothing folded
//   --trace-exits=io,mmio,virtio  only these kinds of line (any of the exit kinds below, and `virtio` for the
//                                 kicks and interrupts that are not exits); words combine: `all,io`
// The closing table always counts every exit, whatever is printed.

public struct ExitTraceSettings: Equatable, Sendable {
    /// A line per exit (false: the closing table only).
    public var printsExits = true
    /// Consecutive identical exits (same vCPU, kind, direction, address, size and RIP) as one line and a count.
    public var folds = true
    /// The exit kinds printed; nil prints every kind.
    public var kinds: Set<ExitTracer.Reason>? = nil
    /// Virtio kicks and interrupts delivered without an exit (ioeventfd, irqfd), printed like exits.
    public var printsVirtioEvents = true

    public init() {}

    /// The words `--trace-exits=` takes besides `summary` and `all`: each exit kind, and `virtio`.
    public static let kindWords: [(word: String, reason: ExitTracer.Reason?)] =
        ExitTracer.Reason.allCases.map { ($0.name.lowercased().replacingUnderscores(), $0) } + [("virtio", nil)]

    /// Parses the comma-separated words after `--trace-exits=`; an unknown or empty word is a usage error.
    public static func parse(_ text: String) throws(VMMError) -> ExitTraceSettings {
        var settings = ExitTraceSettings()
        var kinds: Set<ExitTracer.Reason> = []
        var virtio = false, anyKind = false
        for word in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            switch word {
            case "summary": settings.printsExits = false
            case "all": settings.folds = false
            default:
                guard let match = kindWords.first(where: { $0.word == word }) else {
                    throw .invalidOption("--trace-exits=\(text): unknown word '\(word)' (use summary, all, or the kinds to print: \(kindWords.map(\.word).joined(separator: ", ")))")
                }
                anyKind = true
                if let reason = match.reason { kinds.insert(reason) } else { virtio = true }
            }
        }
        if anyKind {
            settings.kinds = kinds
            settings.printsVirtioEvents = virtio
        }
        return settings
    }

    /// Whether a line for an exit of kind `reason` is printed.
    func prints(_ reason: ExitTracer.Reason) -> Bool { printsExits && (kinds?.contains(reason) ?? true) }
}

extension String {
    /// "internal_error" → "internal-error": option words use dashes.
    fileprivate func replacingUnderscores() -> String { String(map { $0 == "_" ? "-" : $0 }) }
}
