// Group commit for directory fsyncs. A rename is durable once its directory
// is fsynced; when many pieces land in one directory at once, one fsync that
// starts after all their renames covers them all. Callers that arrive while a
// sync runs share the next one (the running one may have started before
// their rename), so each caller still gets a sync that began after it asked.
import { syncDir } from "./durable-fs.ts";

interface DirState {
  running?: Promise<void>;
  queued?: Promise<void>;
}

export class DirSyncer {
  readonly #dirs = new Map<string, DirState>();
  readonly #syncDir: (dir: string) => Promise<void>;

  constructor(sync: (dir: string) => Promise<void> = syncDir) {
    this.#syncDir = sync;
  }

  sync(dir: string): Promise<void> {
    let state = this.#dirs.get(dir);
    if (state === undefined) {
      state = {};
      this.#dirs.set(dir, state);
    }
    const { running } = state;
    if (running === undefined) return this.#start(dir, state);
    const s = state;
    s.queued ??= running.then(
      () => this.#startQueued(dir, s),
      () => this.#startQueued(dir, s),
    );
    return s.queued;
  }

  #startQueued(dir: string, state: DirState): Promise<void> {
    state.queued = undefined;
    return this.#start(dir, state);
  }

  #start(dir: string, state: DirState): Promise<void> {
    const running = this.#syncDir(dir);
    state.running = running;
    const done = () => {
      if (state.running !== running) return;
      state.running = undefined;
      if (state.queued === undefined) this.#dirs.delete(dir);
    };
    running.then(done, done);
    return running;
  }
}
