// GDBEndpoint: where `swiftlet boot --gdb ADDRESS` listens for gdb, parsed and checked at the edge.
//
// A TCP port on the loopback interface ("127.0.0.1:1234", "localhost:1234", "[::1]:1234", ":1234" or
// "1234"; port 0 lets the kernel choose, and the VMM prints the one it got) or a Unix socket path (any
// ADDRESS with a "/", or "unix:PATH"). Anything that would listen beyond this host is refused: whoever
// reaches a gdb stub can read and write all of the guest's memory and registers.

public enum GDBEndpoint: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: UInt16)
    case unix(path: String)

    public static func parse(_ text: String) throws(VMMError) -> GDBEndpoint {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw .invalidOption("--gdb unix: needs a socket path") }
            return .unix(path: path)
        }
        if text.contains("/") { return .unix(path: text) }
        var host = "127.0.0.1", portText = Substring(text)
        if text.hasPrefix("tcp:") { portText = portText.dropFirst(4) }
        if portText.hasPrefix("[") {
            guard let close = portText.firstIndex(of: "]") else { throw .invalidOption("--gdb \(text): unbalanced '[' in an IPv6 address") }
            host = String(portText[portText.index(after: portText.startIndex)..<close])
            portText = portText[portText.index(after: close)...]
            guard portText.hasPrefix(":") else { throw .invalidOption("--gdb \(text): expected [::1]:PORT") }
            portText = portText.dropFirst()
        } else if let colon = portText.lastIndex(of: ":") {
            let given = String(portText[..<colon])
            if !given.isEmpty { host = given }
            portText = portText[portText.index(after: colon)...]
        }
        guard let port = UInt16(portText) else {
            throw .invalidOption("--gdb \(text): not a port (give 127.0.0.1:PORT, :PORT or a Unix socket path)")
        }
        switch host {
        case "127.0.0.1", "localhost": return .tcp(host: "127.0.0.1", port: port)
        case "::1": return .tcp(host: "::1", port: port)
        default:
            throw .invalidOption("--gdb \(text): the gdb stub listens on loopback only (127.0.0.1, localhost or [::1]): whoever reaches it controls the guest; use ssh -L to debug from elsewhere")
        }
    }

    /// What gdb's `target remote` takes.
    public var description: String {
        switch self {
        case let .tcp(host, port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case let .unix(path): path
        }
    }
}
