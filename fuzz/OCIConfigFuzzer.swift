// OCIConfigFuzzer: a libFuzzer target for a bundle's config.json as the container launcher reads it
// (Sources/Container: JSONParser, ContainerSpec(oci:) and what is derived from a spec before anything runs:
// mount options, the seccomp program, device rules, id-map text), built and run by fuzz/run.sh. The input
// is the config.json file; the OCI runtime's parts are read from the same document: the hooks
// (OCIHooks), and a spec's cgroupsPath and sysctls (OCIRuntime.cgroupPath / checkSysctls).
//
// A JSONSyntaxError or ContainerError is expected; a trap never. Checked with require(), which traps with its message: a document the
// parser accepts is printed by JSONValue.formatted() as one it parses back to the same value; a spec that
// is read has a command, absolute mount destinations and id mappings of size 1 or more; its device rules
// carry only r, w and m; a cgroupsPath read is absolute without "." or ".." components; sysctl keys
// read have no "/" and lie in a namespace the spec creates; hooks read have absolute paths.
@testable import Container

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let document = try? JSONParser.parse(bytes) else { return 0 }
    let printed = document.formatted()
    guard let again = try? JSONParser.parse(printed) else { fatalError("formatted() wrote what the parser refuses: \(printed)") }
    require(again == document, "formatted() changed the document")

    if let hooks = try? OCIHooks(document: document) {
        for list in hooks.hooks.values { for hook in list { require(hook.path.hasPrefix("/"), "a relative hook path was read") } }
    }
    var warnings = 0
    guard let spec = try? ContainerSpec(oci: document, bundle: "/bundle", warn: { _ in warnings += 1 }) else { return 0 }
    trace("spec read: \(spec.process.args), \(spec.mounts.count) mounts, \(spec.deviceRules.count) device rules, \(warnings) warnings")
    require(!spec.process.args.isEmpty, "a spec without a command was read")
    require(spec.rootPath.hasPrefix("/"), "a relative root was not resolved")
    for mount in spec.mounts {
        require(mount.destination.hasPrefix("/"), "a relative mount destination was read")
        _ = MountPlan.parseOptions(mount.options)
    }
    for mapping in spec.uidMappings + spec.gidMappings { require(mapping.size >= 1, "an empty id mapping was read") }
    _ = IDMapping.mapFileText(spec.uidMappings)
    // The spec's own profile: the default one (Docker's, when config.json has none) is a constant that
    // SeccompTests compile; compiling it on every input made this target 50 times slower.
    if spec.seccompProfile != nil { _ = try? spec.effectiveSeccompProfile?.compile() }
    for rule in DeviceRule.effective(spec.deviceRules) {
        require(rule.access.allSatisfy { "rwm".contains($0) }, "a device rule with access \(rule.access)")
        _ = rule.cgroupV1Line
        _ = rule.cRule
    }
    if let memory = spec.resources.memoryBytes { _ = ResourceLimits.describe(bytes: memory) }
    if let path = spec.cgroupsPath {
        let parts = path.split(separator: "/")
        require(path.hasPrefix("/") && !parts.contains("..") && !parts.contains("."), "cgroupsPath \(path) was read")
    }
    for key in spec.sysctls.keys { require(!key.contains("/"), "sysctl key \(key) was read") }
    return 0
}
