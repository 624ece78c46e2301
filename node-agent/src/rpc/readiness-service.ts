// The name readiness is reported under in the gRPC health service
// (health.ts): "", the server as a whole, which is what kubelet's gRPC probe
// asks about when it names no service. A module of its own, free of gRPC, so
// the operator's DaemonSet (which names it in its probe) can import it.
export const READINESS_SERVICE = "";
