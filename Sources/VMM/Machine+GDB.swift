// Machine+GDB: the recipe step for `swiftlet boot --gdb ADDRESS`. It binds the stub's socket while the
// machine is built (a port in use or a path in the way is a build error, before any guest code runs) and
// leaves every vCPU stopped before its first instruction; Machine.run starts the server and the vCPU
// threads, which wait at the stub's gate until gdb resumes them (GDBStub.swift, GDBServer.swift).
extension Machine {
    /// Where the gdb stub listens (`target remote` takes it), with the port the kernel chose for port 0.
    public var gdbAddress: String? { gdbStub?.server.address }

    func attachGDBStub(_ endpoint: GDBEndpoint) throws(VMMError) {
        let stub = try GDBStub(endpoint: endpoint, machine: self)
        gdbStub = stub
        note("gdb stub: listening on \(stub.server.address); the vCPUs wait, stopped before their first instruction, for gdb to resume them")
    }
}
