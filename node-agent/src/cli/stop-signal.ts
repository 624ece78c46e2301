// Ctrl-C and SIGTERM as a promise: the first asks for a clean stop, a second
// one for an immediate one. Listening replaces Node's default of dying on the
// spot, which would leave agents running and state.json behind.
export interface StopSignal {
  /** Resolves with the first signal received. */
  readonly received: Promise<NodeJS.Signals>;
  /** Called on every signal after the first. */
  onRepeat(handler: () => void): void;
  dispose(): void;
}

export function listenForStop(signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"]): StopSignal {
  let first: ((signal: NodeJS.Signals) => void) | undefined;
  let repeat = () => {};
  let count = 0;
  const received = new Promise<NodeJS.Signals>((resolve) => {
    first = resolve;
  });
  const listener = (signal: NodeJS.Signals) => {
    count += 1;
    if (count === 1) first?.(signal);
    else repeat();
  };
  for (const s of signals) process.on(s, listener);
  return {
    received,
    onRepeat: (handler) => {
      repeat = handler;
    },
    dispose: () => {
      for (const s of signals) process.off(s, listener);
    },
  };
}
