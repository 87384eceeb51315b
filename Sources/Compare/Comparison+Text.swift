// Comparison+Text: the report `swiftlet compare` prints on a terminal: the questions group by group, each
// with the container's, the VM's and the host's answer; then each column's timeline, failure and details.
// Long answers wrap under their column name. `showSources` adds, under each answer, how it was measured.

import KVM

extension Comparison {
    public func text(width: Int = 110, showSources: Bool = false) -> String {
        var out: [String] = []
        let what = mode == .probe ? "--probe" : "-- " + command.joined(separator: " ")
        out.append("swiftlet compare \(what)")
        out.append("KVM on this host: \(backend)")
        if let backendNote { out += wrap(backendNote, width: width, indent: "  ") }
        let names = Dictionary(uniqueKeysWithValues: ["container", "vm", "host"].map { id in (id, column(id)?.shortName ?? id) })
        // A reason that repeats in a column (every question the guest's userspace would answer) is printed once.
        var reasonsShown: [String: Set<String>] = [:]
        for group in Row.Group.allCases {
            let members = rows.filter { $0.group == group }
            guard !members.isEmpty else { continue }
            out.append("")
            out.append(group.title)
            if group == .startup, let vmGuest { out += wrap(vmGuest, width: width - 2, indent: "").map { "  " + $0 } }
            for row in members {
                out.append("  " + row.label)
                for key in ["container", "vm", "host"] {
                    guard let cell = row.cells[key] else { continue }
                    let label = "    " + names[key]!.padding(to: 10)
                    var display = cell.display
                    if let reason = cell.unavailable, cell.value == nil {
                        if reasonsShown[key, default: []].contains(reason) { display = "unavailable: the same reason as above" }
                        reasonsShown[key, default: []].insert(reason)
                    }
                    let lines = wrap(display, width: width - label.count, indent: "")
                    out.append(label + (lines.first ?? ""))
                    for line in lines.dropFirst() { out.append(String(repeating: " ", count: label.count) + line) }
                    if showSources && !cell.source.isEmpty {
                        for line in wrap("(" + cell.source + ")", width: width - label.count - 2, indent: "") {
                            out.append(String(repeating: " ", count: label.count + 2) + line)
                        }
                    }
                }
            }
        }
        for column in columns where column.id != "host" {
            out.append("")
            out.append("\(column.title): " + (column.completed ? "ran to the end" + (column.commandStatus.map { ", status \($0)" } ?? "") : "did not finish"))
            for run in column.runs { out += wrap("$ " + run, width: width, indent: "    ").map { "  " + $0 } }
            if let failure = column.failure {
                let lines = failure.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
                out += wrap("failure: " + (lines.first.map(String.init) ?? ""), width: width, indent: "    ").map { "  " + $0 }
                for line in lines.dropFirst() { out.append("    " + line) }
            }
            if !column.timeline.isEmpty {
                out.append("  timeline (ms since compare started the process):")
                for mark in column.timeline { out.append("    " + fixed(mark.milliseconds, 2).leftPadding(to: 11) + "  " + mark.name) }
            }
            if !column.output.isEmpty {
                out.append("  output:")
                var lines = column.output.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
                if lines.last?.isEmpty == true { lines.removeLast() }
                for line in lines.prefix(20) { out.append("    " + line) }
            }
            for detail in column.details {
                out.append("  \(detail.title):")
                for line in detail.text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) { out += wrap(String(line), width: width - 4, indent: "  ").map { "    " + $0 } }
            }
        }
        out.append("")
        out.append(succeeded ? "compare: both columns ran to the end (exit status 0)"
                             : "compare: a column did not run to the end or its command failed (exit status 1); see its failure above")
        return out.joined(separator: "\n") + "\n"
    }
}

/// Splits `text` into lines of at most `width` characters at spaces; continuation lines get `indent`.
func wrap(_ text: String, width: Int, indent: String) -> [String] {
    var lines: [String] = []
    var current = ""
    for word in text.split(separator: " ", omittingEmptySubsequences: false) {
        let candidate = current.isEmpty ? String(word) : current + " " + word
        if candidate.count > width && !current.isEmpty {
            lines.append(current)
            current = indent + word
        } else {
            current = candidate
        }
    }
    lines.append(current)
    return lines
}

extension String {
    func padding(to width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
    func leftPadding(to width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
