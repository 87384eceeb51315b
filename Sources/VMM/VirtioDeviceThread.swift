// VirtioDeviceThread: the thread that serves virtio devices outside the vCPU threads.
//
// With KVM_IOEVENTFD a guest's queue notification (a write to QueueNotify or a PCI notify address) does not
// leave KVM_RUN at all: KVM signals an eventfd and the vCPU goes on running the guest. This thread waits in
// epoll on those eventfds (and on console sockets, and on a stop eventfd) and hands each kick to its device,
// which consumes the queue and interrupts the driver through an irqfd — so a request costs the guest no
// exit to user space. One POSIX thread for all devices, like kvmtool's ioeventfd thread.
import CKVM
import Glibc
import Synchronization

final class VirtioDeviceThread: @unchecked Sendable {
    private let epollFD: Int32
    private let stopFD: Int32
    private let handlers = Mutex<[Int32: @Sendable () -> Void]>([:])
    private var thread: pthread_t?
    /// Called on each wake-up after the handlers (a paused socket looks for room again).
    private let idle = Mutex<[@Sendable () -> Void]>([])
    /// epoll_wait's timeout while any idle task is registered, else forever.
    static let idleMilliseconds: Int32 = 10

    init() throws(VMMError) {
        let epoll = ckvm_epoll_create()
        guard epoll >= 0 else { throw .thread("epoll_create1 for the virtio device thread: \(String(cString: strerror(-epoll)))") }
        let stop = ckvm_eventfd()
        guard stop >= 0 else {
            _ = ckvm_close(epoll)
            throw .thread("eventfd for the virtio device thread: \(String(cString: strerror(-stop)))")
        }
        epollFD = epoll
        stopFD = stop
        _ = ckvm_epoll_add(epollFD, stopFD, UInt64(UInt32(bitPattern: stopFD)))
    }

    deinit {
        _ = ckvm_close(epollFD)
        _ = ckvm_close(stopFD)
    }

    /// Calls `handler` on this thread whenever `fd` is readable (level-triggered: the handler must read it).
    func watch(_ fd: Int32, _ handler: @escaping @Sendable () -> Void) throws(VMMError) {
        handlers.withLock { $0[fd] = handler }
        let result = ckvm_epoll_add(epollFD, fd, UInt64(UInt32(bitPattern: fd)))
        guard result == 0 else {
            handlers.withLock { _ = $0.removeValue(forKey: fd) }
            throw .thread("epoll_ctl(ADD) of fd \(fd): \(String(cString: strerror(-result)))")
        }
    }

    /// Stops watching `fd` (before it is closed).
    func unwatch(_ fd: Int32) {
        _ = ckvm_epoll_remove(epollFD, fd)
        handlers.withLock { _ = $0.removeValue(forKey: fd) }
    }

    /// A task run on every wake-up, and at least every `idleMilliseconds`.
    func addIdleTask(_ task: @escaping @Sendable () -> Void) { idle.withLock { $0.append(task) } }

    func start() throws(VMMError) {
        let context = Unmanaged.passRetained(self)
        var t = pthread_t()
        let result = pthread_create(&t, nil, { raw in
            let me = Unmanaged<VirtioDeviceThread>.fromOpaque(raw!).takeRetainedValue()
            Confinement.enter(.virtio, name: "virtio")
            me.loop()
            return nil
        }, context.toOpaque())
        guard result == 0 else {
            context.release()
            throw .thread("virtio device thread: \(String(cString: strerror(result)))")
        }
        thread = t
    }

    /// Wakes the thread, lets it finish what it is doing, and joins it.
    func stop() {
        guard let thread else { return }
        _ = ckvm_eventfd_signal(stopFD)
        pthread_join(thread, nil)
        self.thread = nil
    }

    private func loop() {
        var tokens = [UInt64](repeating: 0, count: 16)
        while true {
            let timeout = idle.withLock { $0.isEmpty } ? -1 : Self.idleMilliseconds
            let n = tokens.withUnsafeMutableBufferPointer { ckvm_epoll_wait(epollFD, $0.baseAddress, Int32($0.count), timeout) }
            if n < 0 && n != -EINTR { return }
            for i in 0..<max(0, Int(n)) {
                let fd = Int32(truncatingIfNeeded: tokens[i])
                if fd == stopFD { return }
                handlers.withLock { $0[fd] }?()
            }
            for task in idle.withLock({ $0 }) { task() }
        }
    }
}
