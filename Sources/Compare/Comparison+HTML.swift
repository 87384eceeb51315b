// Comparison+HTML: `swiftlet compare --html FILE`, one self-contained page (inline CSS and SVG, no script,
// no external resource) a presenter can open offline: start-up timelines on a logarithmic time axis (a
// container starts in milliseconds, a VM on a software KVM in minutes) with what the VM side boots said
// beside them, memory bars, the host-visibility matrix, then every row with how it was measured, and each
// column's failure, runs and details. The page follows the reader's light or dark setting
// (prefers-color-scheme), and its charts and tables fit a phone's width (a viewport meta, charts that scale,
// the question table stacked below 640 px).
// bench/render-html.sh renders it in headless Chromium to a PNG.
import Glibc
import KVM

extension Comparison {
    public func html() -> String {
        var body: [String] = []
        let what = mode == .probe ? "--probe" : "-- " + command.joined(separator: " ")
        body.append("<h1>swiftlet compare <code>\(escape(what))</code></h1>")
        body.append("<p class=\"meta\">KVM on this host: <b>\(escape(backend))</b>. " + (succeeded ? "Both columns ran to the end." : "A column did not run to the end or its command failed: see its failure below.") + "</p>")
        if let backendNote { body.append("<p class=\"note\">\(escape(backendNote))</p>") }
        body.append("<h2>Start-up timelines</h2>")
        if let vmGuest { body.append("<p class=\"note vm-guest\"><b>Which VM?</b> \(escape(vmGuest))</p>") }
        body.append("<p class=\"meta\">Milliseconds since compare started each column's process, on a logarithmic axis.</p>")
        body.append(timelineSVG())
        body.append("<h2>Host memory</h2>")
        body.append(memorySVG())
        body.append("<h2>What of the host is visible</h2>")
        body.append(visibilityMatrix())
        body.append("<h2>Every question</h2>")
        body.append(table())
        for column in columns where column.id != "host" { body.append(columnSection(column)) }
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>swiftlet compare \(escape(what))</title>
        <style>
        \(Self.css)
        </style></head><body>
        \(body.joined(separator: "\n"))
        </body></html>

        """
    }

    /// The page's style: colours as variables (a light and a dark set, chosen by prefers-color-scheme), charts
    /// that scale with the page, and on a narrow screen the question table stacked one answer under another.
    static let css = """
    :root { --bg: #ffffff; --fg: #1d2330; --muted: #4a5468; --faint: #6b7488; --line: #dfe3ea; --grid: #e3e6ec;
      --th: #eef1f6; --group: #f7f8fb; --pre: #f4f6f9; --note-bg: #fff6dd; --note-line: #e8b100; --na: #8a5a00;
      --fail: #b3261e; --seen: #f4c7c3; --hidden: #cfe9d3; --unmeasured: #e6e8ec;
      --container: #2f7dd1; --container-light: #8cbcf0; --vm: #c2571a; --vm-light: #f0a878; }
    @media (prefers-color-scheme: dark) {
      :root { --bg: #14171d; --fg: #e3e6ed; --muted: #aab2c3; --faint: #8f98aa; --line: #363c48; --grid: #2b303a;
        --th: #222731; --group: #1b1f27; --pre: #1b1f27; --note-bg: #3a3114; --note-line: #c99a00; --na: #e3b35a;
        --fail: #ff8a80; --seen: #6e2b27; --hidden: #1f4f2b; --unmeasured: #353a44;
        --container: #5aa2ec; --container-light: #2d6198; --vm: #e8843f; --vm-light: #8c4a20; }
    }
    body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; padding: 0 1em;
      max-width: 1100px; color: var(--fg); background: var(--bg); line-height: 1.4; }
    h1 { font-size: 1.6em; overflow-wrap: anywhere; } h2 { margin-top: 1.6em; border-bottom: 2px solid var(--line); padding-bottom: 0.2em; }
    code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.9em; }
    pre { background: var(--pre); padding: 0.6em; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
    .meta { color: var(--muted); } .note { background: var(--note-bg); border-left: 4px solid var(--note-line); padding: 0.6em; }
    table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
    th, td { border: 1px solid var(--line); padding: 0.35em 0.5em; vertical-align: top; text-align: left; overflow-wrap: break-word; }
    th { background: var(--th); } td.group { background: var(--group); font-weight: bold; }
    .src { color: var(--faint); font-size: 0.85em; display: block; margin-top: 0.2em; }
    .na { color: var(--na); } .fail { color: var(--fail); }
    .chart svg { display: block; width: 100%; height: auto; font-size: 15px; } .chart svg .small { font-size: 13px; }
    svg text { fill: var(--fg); } svg .muted { fill: var(--muted); } svg .grid { stroke: var(--grid); }
    svg .dot { fill: var(--bg); } svg .warn { fill: var(--na); } svg .bad { fill: var(--fail); }
    .c-container { fill: var(--container); } .c-container-light { fill: var(--container-light); }
    .c-vm { fill: var(--vm); } .c-vm-light { fill: var(--vm-light); }
    .s-container { stroke: var(--container); } .s-vm { stroke: var(--vm); }
    svg text.c-container { fill: var(--container); } svg text.c-vm { fill: var(--vm); }
    .marks { margin: 0.2em 0 1em; padding-left: 0; list-style: none; columns: 2; column-gap: 2em; font-size: 0.9em; }
    .marks li { break-inside: avoid; } .marks b { display: inline-block; min-width: 1.6em; }
    .marks .t { display: inline-block; min-width: 5.5em; color: var(--muted); }
    .k-container { color: var(--container); } .k-vm { color: var(--vm); }
    .matrix td { width: 40%; } .matrix th:first-child, .matrix td:first-child { width: 20%; }
    .matrix td.seen { background: var(--seen); } .matrix td.hidden { background: var(--hidden); } .matrix td.unmeasured { background: var(--unmeasured); }
    .matrix td b { display: block; } .footnotes { color: var(--muted); font-size: 0.9em; }
    @media (max-width: 640px) {
      body { margin: 0.8em auto; font-size: 15px; } h1 { font-size: 1.3em; }
      .marks { columns: 1; }
      .chart svg { font-size: 30px; } .chart svg .small { font-size: 26px; }
      .chart svg line.s-container, .chart svg line.s-vm { stroke-width: 8px; } .chart svg circle { r: 8px; stroke-width: 4px; }
      .questions tr:first-child { display: none; }
      .questions tr, .questions td { display: block; width: auto; }
      .questions tr { border: 1px solid var(--line); margin-bottom: 0.5em; }
      .questions td { border: none; border-top: 1px solid var(--line); }
      .questions td:first-child { font-weight: bold; border-top: none; }
      .questions td[data-label]::before { content: attr(data-label); display: block; font-size: 0.8em; color: var(--muted); }
    }
    """

    // MARK: Charts

    func timelineSVG() -> String {
        // One lane per column: a line from 0.1 ms to the column's last point and a numbered dot per point; under
        // the chart, each lane's points as a list (number, time, name), which wraps on a narrow screen.
        let lanes = columns.filter { $0.id != "host" }
        let all = lanes.flatMap { $0.timeline.map(\.milliseconds) }.filter { $0 > 0 }
        let low = 0.1, high = max(10, (all.max() ?? 10) * 1.5)
        // Room for labels stacked three deep on each side of a lane, at a phone's font size too (30 units).
        let left = 24.0, width = 850.0, laneHeight = 150.0, step = 28.0
        func x(_ ms: Double) -> Double {
            let value = max(ms, low)
            return left + (log10(value) - log10(low)) / (log10(high) - log10(low)) * width
        }
        var lanesSVG = ""
        var lists = ""
        var y = 110.0
        for lane in lanes {
            let kind = lane.id == "vm" ? "vm" : "container"
            let tag = lane.id == "vm" ? vmTag.map { "<tspan class=\"muted small\"> \(escape($0))</tspan>" } ?? "" : ""
            lanesSVG += "<text x=\"4\" y=\"\(f(y - 44))\" font-weight=\"bold\" class=\"c-\(kind)\">\(escape(lane.shortName))\(tag)</text>"
            if let last = lane.timeline.last {
                lanesSVG += "<line x1=\"\(f(x(low)))\" y1=\"\(f(y))\" x2=\"\(f(x(last.milliseconds)))\" y2=\"\(f(y))\" class=\"s-\(kind)\" stroke-width=\"4\" stroke-linecap=\"round\"/>"
            } else {
                lanesSVG += "<text x=\"\(f(left))\" y=\"\(f(y + 4))\" class=\"bad\">no timeline: \(escape(lane.failure?.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).first.map(String.init) ?? "did not run"))</text>"
            }
            // Numbers alternate above and below the line, and a number that would touch the one before it on
            // its side moves one line further out, so neighbours a pixel apart stay readable.
            var lastOnSide: [Double] = [-100, -100], levelOnSide = [0, 0]
            for (index, mark) in lane.timeline.enumerated() {
                let px = x(mark.milliseconds)
                let side = index % 2
                levelOnSide[side] = px - lastOnSide[side] < 26 ? levelOnSide[side] + 1 : 0
                lastOnSide[side] = px
                let shift = Double(levelOnSide[side]) * step
                let labelY = side == 0 ? y - 10 - shift : y + 28 + shift
                lanesSVG += "<circle cx=\"\(f(px))\" cy=\"\(f(y))\" r=\"4\" class=\"dot s-\(kind)\" stroke-width=\"2\"><title>\(escape(mark.name)): \(escape(formatMilliseconds(mark.milliseconds)))</title></circle>"
                lanesSVG += "<text x=\"\(f(px))\" y=\"\(f(labelY))\" text-anchor=\"middle\" font-weight=\"bold\" class=\"c-\(kind)\">\(index + 1)</text>"
            }
            if !lane.timeline.isEmpty {
                lists += "<p><b class=\"k-\(kind)\">\(escape(lane.shortName))</b></p><ol class=\"marks\">"
                for (index, mark) in lane.timeline.enumerated() {
                    lists += "<li><b class=\"k-\(kind)\">\(index + 1)</b><span class=\"t\">\(escape(formatMilliseconds(mark.milliseconds)))</span>\(escape(mark.name))</li>"
                }
                lists += "</ol>"
            }
            y += laneHeight
        }
        let axisY = y - 50
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(left + width + 30)) \(Int(axisY + 36))\" role=\"img\" aria-label=\"start-up timelines\">"
        var decade = low
        while decade <= high * 1.0001 {
            let px = x(decade)
            svg += "<line x1=\"\(f(px))\" y1=\"30\" x2=\"\(f(px))\" y2=\"\(f(axisY))\" class=\"grid\"/>"
            svg += "<text x=\"\(f(px))\" y=\"\(f(axisY + 28))\" text-anchor=\"\(px < left + 30 ? "start" : "middle")\" class=\"muted\">\(escape(axisLabel(decade)))</text>"
            decade *= 10
        }
        return "<div class=\"chart\">" + svg + lanesSVG + "</svg></div>" + lists
    }

    /// Two or three words for the VM lane's label: what boots there.
    var vmTag: String? {
        guard let title = column("vm")?.title else { return nil }
        return title.contains("--guest probe") ? "tiny guest, no OS" : "Linux + busybox"
    }

    func memorySVG() -> String {
        struct Bar { var label: String; var parts: [(text: String, kib: Double, style: String)] }
        var bars: [Bar] = []
        for id in ["container", "vm"] {
            let runtime = row("memory_runtime")?.cells[id]?.number
            let workload = row("memory_workload")?.cells[id]?.number
            var parts: [(text: String, kib: Double, style: String)] = []
            if id == "container" {
                if let runtime { parts.append(("launcher peak RSS \(formatKiB(runtime))", runtime, "c-container")) }
                if let workload { parts.append(("largest contained process peak \(formatKiB(workload))", workload, "c-container-light")) }
            } else if let runtime, let workload, workload <= runtime {
                // The guest RAM the VM touched is inside the VMM's RSS: drawn as the first part of the same bar.
                parts.append(("guest RAM resident \(formatKiB(workload))", workload, "c-vm-light"))
                parts.append(("rest of the VMM's peak RSS \(formatKiB(runtime - workload))", runtime - workload, "c-vm"))
            } else if let runtime {
                parts.append(("VMM peak RSS \(formatKiB(runtime))", runtime, "c-vm"))
            }
            bars.append(Bar(label: column(id)?.shortName ?? id, parts: parts))
        }
        let maximum = max(1, bars.map { $0.parts.reduce(0) { $0 + $1.kib } }.max() ?? 1)
        let left = 4.0, width = 700.0, barHeight = 30.0, legendLine = 34.0
        var svg = ""
        var y = 4.0
        for bar in bars {
            svg += "<text x=\"\(f(left))\" y=\"\(f(y + 28))\" font-weight=\"bold\">\(escape(bar.label))</text>"
            y += 40
            if bar.parts.isEmpty {
                svg += "<text x=\"\(f(left))\" y=\"\(f(y + 22))\" class=\"warn\">not measured: the column did not run</text>"
                y += barHeight + 24
                continue
            }
            var at = left
            for part in bar.parts {
                let w = max(1, part.kib / maximum * width)
                svg += "<rect x=\"\(f(at))\" y=\"\(f(y))\" width=\"\(f(w))\" height=\"\(f(barHeight))\" class=\"\(part.style)\"><title>\(escape(part.text))</title></rect>"
                at += w
            }
            let total = bar.parts.reduce(0) { $0 + $1.kib }
            svg += "<text x=\"\(f(at + 8))\" y=\"\(f(y + 22))\" font-weight=\"bold\">\(escape(formatKiB(total)))</text>"
            // The legend: one line per part, its swatch in the part's own colour.
            for (k, part) in bar.parts.enumerated() {
                let ly = y + barHeight + 10 + Double(k) * legendLine
                svg += "<rect x=\"\(f(left))\" y=\"\(f(ly))\" width=\"22\" height=\"22\" class=\"legend \(part.style)\"/>"
                svg += "<text x=\"\(f(left + 30))\" y=\"\(f(ly + 18))\">\(escape(part.text))</text>"
            }
            y += barHeight + 10 + Double(bar.parts.count) * legendLine + 10
        }
        return "<div class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(left + width + 200)) \(Int(y))\" role=\"img\" aria-label=\"host memory\">" + svg + "</svg></div>"
    }

    /// The host-visibility matrix as a table: each cell coloured by whether the workload sees the host's, with
    /// its whole answer; a reason given for several cells is written once, as a numbered note under the table.
    func visibilityMatrix() -> String {
        let ids = ["kernel_release", "host_processes", "hostname", "dev_kvm", "host_mounts", "kernel_modules"]
        let names = ["kernel_release": "the host's kernel", "host_processes": "host processes", "hostname": "the host's hostname",
                     "dev_kvm": "/dev/kvm", "host_mounts": "host mounts", "kernel_modules": "host kernel modules"]
        var notes: [String] = []
        var html = "<table class=\"matrix\"><tr><th>the workload sees</th><th>container</th><th>VM</th></tr>"
        for id in ids {
            html += "<tr><td>\(escape(names[id]!))</td>"
            for column in ["container", "vm"] {
                let cell = row(id)?.cells[column]
                let (style, word): (String, String)
                switch cell?.hostVisible {
                case true?: (style, word) = ("seen", "visible")
                case false?: (style, word) = ("hidden", "hidden")
                case nil: (style, word) = ("unmeasured", "not measured")
                }
                var text = ""
                if let value = cell?.value {
                    text = escape(value)
                } else {
                    let reason = cell?.unavailable ?? "the column did not run"
                    if !notes.contains(reason) { notes.append(reason) }
                    let number = notes.firstIndex(of: reason)! + 1
                    text = "see note \(number) below"
                }
                html += "<td class=\"\(style)\" title=\"\(escape(cell?.display ?? ""))\"><b>\(word)</b>\(text)</td>"
            }
            html += "</tr>"
        }
        html += "</table><p class=\"footnotes\">Red: the workload sees the host's; green: it does not; grey: not measured.</p>"
        if !notes.isEmpty {
            html += "<ol class=\"footnotes\">" + notes.map { "<li>\(escape($0))</li>" }.joined() + "</ol>"
        }
        return html
    }

    // MARK: Tables and sections

    func table() -> String {
        var html = "<table class=\"questions\"><tr><th>question</th><th>container</th><th>VM</th><th>host (reference)</th></tr>"
        let labels = ["container": "container", "vm": "VM", "host": "host (reference)"]
        for group in Row.Group.allCases {
            let members = rows.filter { $0.group == group }
            guard !members.isEmpty else { continue }
            html += "<tr><td class=\"group\" colspan=\"4\">\(escape(group.title))</td></tr>"
            for row in members {
                html += "<tr><td>\(escape(row.label))</td>"
                for id in ["container", "vm", "host"] {
                    let label = " data-label=\"\(labels[id]!)\""
                    guard let cell = row.cells[id] else { html += "<td\(label)></td>"; continue }
                    if let value = cell.value {
                        html += "<td\(label)>\(escape(value))<span class=\"src\">\(escape(cell.source))</span></td>"
                    } else {
                        html += "<td class=\"na\"\(label)>unavailable: \(escape(cell.unavailable ?? ""))</td>"
                    }
                }
                html += "</tr>"
            }
        }
        return html + "</table>"
    }

    func columnSection(_ column: Column) -> String {
        var html = "<h2>\(escape(column.title))</h2>"
        html += column.completed ? "<p>Ran to the end\(column.commandStatus.map { ", status \($0)" } ?? "").</p>" : "<p class=\"fail\">Did not finish.</p>"
        if let failure = column.failure { html += "<pre class=\"fail\">\(escape(failure))</pre>" }
        if !column.runs.isEmpty { html += "<p>Runs:</p><pre>" + column.runs.map { "$ " + escape($0) }.joined(separator: "\n") + "</pre>" }
        if !column.timeline.isEmpty {
            html += "<table><tr><th>ms</th><th>point</th></tr>"
            for mark in column.timeline { html += "<tr><td>\(escape(fixed(mark.milliseconds, 2)))</td><td>\(escape(mark.name))</td></tr>" }
            html += "</table>"
        }
        if !column.output.isEmpty { html += "<p>Output:</p><pre>\(escape(column.output))</pre>" }
        for detail in column.details { html += "<p>\(escape(detail.title)):</p><pre>\(escape(detail.text))</pre>" }
        return html
    }
}

func escape(_ text: String) -> String {
    var out = ""
    for c in text {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}

func f(_ value: Double) -> String { fixed(value, 1) }

func axisLabel(_ ms: Double) -> String {
    if ms >= 1000 { return fixed(ms / 1000, 0) + " s" }
    if ms >= 1 { return fixed(ms, 0) + " ms" }
    return fixed(ms, 1) + " ms"
}

