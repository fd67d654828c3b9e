/// The control requests a running supervisor answers (`labrun status`, `stop`, `exec`, …).
extension Supervisor {
    func received(_ request: ControlRequest, from id: ControlServer.ConnectionID) {
        switch request.command {
        case .status:
            var r = ControlResponse()
            let stuck = watchdog.notResponding
            r.status = SupervisorStatus(lab: lab.root, runDirectory: run.path, supervisorPid: currentProcessID, qemuPid: child.pid,
                                        runState: stuck == nil ? runState : "not responding", uptimeSeconds: monotonicSeconds() - startedAt,
                                        accelerator: command.accelerator.rawValue, shared: command.options.shared,
                                        gdbPort: command.options.gdbPort, agent: agent.isReady, notResponding: stuck)
            r.message = statusLine()
            control.respond(id, r)
        case .stop:
            var r = ControlResponse()
            r.message = "stopping the VM"
            control.respond(id, r)
            screen.notice("`labrun stop` requested: shutting the VM down")
            quit(.quit)
        case .exec, .waitReady:
            agentRequests.submit(request.command, from: id)
        case .snapshot(let r):
            operations.enqueue(.init(origin: .control(id), request: r))
        case .suspend:
            suspender.request(from: id)
        case .reset(let undo):
            screen.notice(undo ? "`labrun reset --undo` requested: back to the previous runtime layer" : "`labrun reset` requested: back to the golden image")
            beginRelaunch(.reset(undo: undo, requester: id))
        }
    }
}
