// Comparison+HTML: `swiftlet compare --html FILE`, one self-contained page (inline CSS and SVG, no script,
// no external resource) a presenter can open offline: start-up timelines on a logarithmic time axis (a
// container starts in milliseconds, a VM on a software KVM in minutes), memory bars, the host-visibility
// matrix, then every row with how it was measured, and each column's failure, runs and details.
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
        body.append("<p class=\"meta\">Milliseconds since compare started each column's process, on a logarithmic axis.</p>")
        body.append(timelineSVG())
        body.append("<h2>Host memory</h2>")
        body.append(memorySVG())
        body.append("<h2>What of the host is visible</h2>")
        body.append(visibilitySVG())
        body.append("<h2>Every question</h2>")
        body.append(table())
        for column in columns where column.id != "host" { body.append(columnSection(column)) }
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>swiftlet compare \(escape(what))</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #1d2330; background: #ffffff; }
        h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 2px solid #dfe3ea; padding-bottom: 0.2em; }
        code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.9em; }
        pre { background: #f4f6f9; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
        .meta { color: #4a5468; } .note { background: #fff6dd; border-left: 4px solid #e8b100; padding: 0.6em; }
        table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
        th, td { border: 1px solid #dfe3ea; padding: 0.35em 0.5em; vertical-align: top; text-align: left; }
        th { background: #eef1f6; } td.group { background: #f7f8fb; font-weight: bold; }
        .src { color: #6b7488; font-size: 0.85em; display: block; margin-top: 0.2em; }
        .na { color: #8a5a00; } .fail { color: #b3261e; }
        </style></head><body>
        \(body.joined(separator: "\n"))
        </body></html>

        """
    }

    // MARK: Charts

    func timelineSVG() -> String {
        // One lane per column: a line from 0.1 ms to the column's last point, a numbered dot per point, and a
        // legend under the lane naming each number (names are long; numbers never overlap their neighbours' text).
        let lanes = columns.filter { $0.id != "host" }
        let all = lanes.flatMap { $0.timeline.map(\.milliseconds) }.filter { $0 > 0 }
        let low = 0.1, high = max(10, (all.max() ?? 10) * 1.5)
        let left = 110.0, width = 920.0, lineGap = 16.0
        func x(_ ms: Double) -> Double {
            let value = max(ms, low)
            return left + (log10(value) - log10(low)) / (log10(high) - log10(low)) * width
        }
        let colors = ["container": "#2f7dd1", "vm": "#c2571a"]
        var lanesSVG = ""
        var y = 40.0
        for lane in lanes {
            let color = colors[lane.id] ?? "#555"
            lanesSVG += "<text x=\"8\" y=\"\(f(y + 4))\" font-weight=\"bold\" fill=\"\(color)\">\(escape(lane.shortName))</text>"
            if let last = lane.timeline.last {
                lanesSVG += "<line x1=\"\(f(x(low)))\" y1=\"\(f(y))\" x2=\"\(f(x(last.milliseconds)))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"4\" stroke-linecap=\"round\"/>"
            } else {
                lanesSVG += "<text x=\"\(f(left))\" y=\"\(f(y + 4))\" fill=\"#b3261e\">no timeline: \(escape(lane.failure?.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).first.map(String.init) ?? "did not run"))</text>"
            }
            for (index, mark) in lane.timeline.enumerated() {
                let px = x(mark.milliseconds)
                // Numbers alternate above and below the line so neighbours a pixel apart stay readable.
                let labelY = index % 2 == 0 ? y - 10 : y + 20
                lanesSVG += "<circle cx=\"\(f(px))\" cy=\"\(f(y))\" r=\"4\" fill=\"#ffffff\" stroke=\"\(color)\" stroke-width=\"2\"><title>\(escape(mark.name)): \(escape(formatMilliseconds(mark.milliseconds)))</title></circle>"
                lanesSVG += "<text x=\"\(f(px))\" y=\"\(f(labelY))\" text-anchor=\"middle\" font-weight=\"bold\" fill=\"\(color)\">\(index + 1)</text>"
            }
            // Legend: two columns of "n  time  name".
            let rowsNeeded = (lane.timeline.count + 1) / 2
            for (index, mark) in lane.timeline.enumerated() {
                let column = Double(index / max(rowsNeeded, 1)), row = Double(index % max(rowsNeeded, 1))
                let lx = left + column * (width / 2), ly = y + 44 + row * lineGap
                lanesSVG += "<text x=\"\(f(lx))\" y=\"\(f(ly))\"><tspan font-weight=\"bold\" fill=\"\(color)\">\(index + 1)</tspan>  \(escape(formatMilliseconds(mark.milliseconds)))  \(escape(mark.name))</text>"
            }
            y += 44 + Double(rowsNeeded) * lineGap + 36
        }
        let axisY = y - 10
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + width + 40))\" height=\"\(Int(axisY + 24))\" font-size=\"12\">"
        var decade = low
        while decade <= high * 1.0001 {
            let px = x(decade)
            svg += "<line x1=\"\(f(px))\" y1=\"20\" x2=\"\(f(px))\" y2=\"\(f(axisY))\" stroke=\"#e3e6ec\"/>"
            svg += "<text x=\"\(f(px))\" y=\"\(f(axisY + 16))\" text-anchor=\"middle\" fill=\"#4a5468\">\(escape(axisLabel(decade)))</text>"
            decade *= 10
        }
        return svg + lanesSVG + "</svg>"
    }

    func memorySVG() -> String {
        struct Bar { var label: String; var parts: [(String, Double, String)] }
        var bars: [Bar] = []
        for id in ["container", "vm"] {
            let runtime = row("memory_runtime")?.cells[id]?.number
            let workload = row("memory_workload")?.cells[id]?.number
            let name = column(id)?.shortName ?? id
            if id == "container" {
                var parts: [(String, Double, String)] = []
                if let runtime { parts.append(("launcher peak RSS \(formatKiB(runtime))", runtime, "#2f7dd1")) }
                if let workload { parts.append(("largest contained process peak \(formatKiB(workload))", workload, "#8cbcf0")) }
                bars.append(Bar(label: name, parts: parts))
            } else {
                // The guest RAM the VM touched is inside the VMM's RSS: drawn as the first part of the same bar.
                var parts: [(String, Double, String)] = []
                if let runtime, let workload, workload <= runtime {
                    parts.append(("guest RAM resident \(formatKiB(workload))", workload, "#f0a878"))
                    parts.append(("rest of the VMM's peak RSS \(formatKiB(runtime - workload))", runtime - workload, "#c2571a"))
                } else if let runtime {
                    parts.append(("VMM peak RSS \(formatKiB(runtime))", runtime, "#c2571a"))
                }
                bars.append(Bar(label: name, parts: parts))
            }
        }
        let maximum = max(1, bars.map { $0.parts.reduce(0) { $0 + $1.1 } }.max() ?? 1)
        let left = 110.0, width = 760.0, barHeight = 28.0
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + width + 60))\" height=\"\(Int(Double(bars.count) * 80 + 20))\" font-size=\"12\">"
        for (index, bar) in bars.enumerated() {
            let y = 20 + Double(index) * 80
            svg += "<text x=\"8\" y=\"\(f(y + 19))\" font-weight=\"bold\">\(escape(bar.label))</text>"
            if bar.parts.isEmpty {
                svg += "<text x=\"\(f(left))\" y=\"\(f(y + 19))\" fill=\"#8a5a00\">not measured: the column did not run</text>"
                continue
            }
            var at = left
            for (k, part) in bar.parts.enumerated() {
                let w = max(1, part.1 / maximum * width)
                svg += "<rect x=\"\(f(at))\" y=\"\(f(y))\" width=\"\(f(w))\" height=\"\(f(barHeight))\" fill=\"\(part.2)\"><title>\(escape(part.0))</title></rect>"
                svg += "<text x=\"\(f(left + Double(k) * 330))\" y=\"\(f(y + barHeight + 16))\" fill=\"#1d2330\">■ \(escape(part.0))</text>"
                at += w
            }
            let total = bar.parts.reduce(0) { $0 + $1.1 }
            svg += "<text x=\"\(f(at + 6))\" y=\"\(f(y + 19))\" font-weight=\"bold\">\(escape(formatKiB(total)))</text>"
        }
        return svg + "</svg>"
    }

    func visibilitySVG() -> String {
        let ids = ["kernel_release", "host_processes", "hostname", "dev_kvm", "host_mounts", "kernel_modules"]
        let names = ["kernel_release": "the host's kernel", "host_processes": "host processes", "hostname": "the host's hostname",
                     "dev_kvm": "/dev/kvm", "host_mounts": "host mounts", "kernel_modules": "host kernel modules"]
        let left = 170.0, cellWidth = 360.0, cellHeight = 34.0
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + cellWidth * 2 + 20))\" height=\"\(Int(40 + cellHeight * Double(ids.count) + 40))\" font-size=\"12\">"
        svg += "<text x=\"\(f(left + cellWidth / 2))\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">container</text>"
        svg += "<text x=\"\(f(left + cellWidth * 1.5))\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">VM</text>"
        for (index, id) in ids.enumerated() {
            let y = 30 + Double(index) * cellHeight
            svg += "<text x=\"8\" y=\"\(f(y + 21))\">\(escape(names[id]!))</text>"
            for (k, column) in ["container", "vm"].enumerated() {
                let cell = row(id)?.cells[column]
                let (fill, word): (String, String)
                switch cell?.hostVisible {
                case true?: (fill, word) = ("#f4c7c3", "visible")
                case false?: (fill, word) = ("#cfe9d3", "hidden")
                case nil: (fill, word) = ("#e6e8ec", "not measured")
                }
                let x = left + Double(k) * cellWidth
                var detail = cell?.value ?? cell?.unavailable ?? ""
                if detail.count > 46 { detail = String(detail.prefix(45)) + "…" }
                svg += "<rect x=\"\(f(x + 2))\" y=\"\(f(y + 2))\" width=\"\(f(cellWidth - 4))\" height=\"\(f(cellHeight - 4))\" fill=\"\(fill)\" rx=\"4\"><title>\(escape(cell?.display ?? ""))</title></rect>"
                svg += "<text x=\"\(f(x + 10))\" y=\"\(f(y + 21))\"><tspan font-weight=\"bold\">\(word)</tspan> \(escape(detail))</text>"
            }
        }
        let legendY = 30 + Double(ids.count) * cellHeight + 24
        svg += "<text x=\"8\" y=\"\(f(legendY))\" fill=\"#4a5468\">red: the workload sees the host's; green: it does not; grey: not measured (the reason is in the table)</text>"
        return svg + "</svg>"
    }

    // MARK: Tables and sections

    func table() -> String {
        var html = "<table><tr><th>question</th><th>container</th><th>VM</th><th>host (reference)</th></tr>"
        for group in Row.Group.allCases {
            let members = rows.filter { $0.group == group }
            guard !members.isEmpty else { continue }
            html += "<tr><td class=\"group\" colspan=\"4\">\(escape(group.title))</td></tr>"
            for row in members {
                html += "<tr><td>\(escape(row.label))</td>"
                for id in ["container", "vm", "host"] {
                    guard let cell = row.cells[id] else { html += "<td></td>"; continue }
                    if let value = cell.value {
                        html += "<td>\(escape(value))<span class=\"src\">\(escape(cell.source))</span></td>"
                    } else {
                        html += "<td class=\"na\">unavailable: \(escape(cell.unavailable ?? ""))</td>"
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

