// IDMapping: one line of /proc/PID/uid_map or gid_map (user_namespaces(7)): `size` ids starting at
// `containerID` inside the namespace are `hostID`... outside it.

public struct IDMapping: Equatable, Sendable, CustomStringConvertible {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }

    /// "0 0 4294967295": every id maps to itself; root stays root for files, but its capabilities
    /// only reach what the user namespace owns.
    public static let identity = IDMapping(containerID: 0, hostID: 0, size: UInt32.max)

    /// The line written to uid_map/gid_map.
    public var description: String { "\(containerID) \(hostID) \(size)" }

    /// The host id for a container id, if mapped.
    public static func hostID(for id: UInt32, in mappings: [IDMapping]) -> UInt32? {
        for mapping in mappings where id >= mapping.containerID && UInt64(id) < UInt64(mapping.containerID) + UInt64(mapping.size) {
            return mapping.hostID + (id - mapping.containerID)
        }
        return nil
    }

    /// The text written to the map file: one mapping per line.
    static func mapFileText(_ mappings: [IDMapping]) -> String {
        mappings.map { $0.description + "\n" }.joined()
    }
}
