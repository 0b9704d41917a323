/**
 * The scheduler's start journal: the id of every message it starts ahead of
 * the database, written and fsynced before the command runs. Handing a slot
 * from a finished message to the next one is then an append (~0.2 ms)
 * instead of a database commit (~6 ms on a busy VM): the database records
 * both just after, in the order they happened. Should the daemon die in
 * between, the next start reads the journal and ends every message named
 * there that is not finished as error "interrupted", exactly as for one
 * that was running: a message is never run twice.
 *
 * The file is emptied whenever every id in it has its claim committed.
 */
export class StartJournal {
  private pending = new Set<string>();
  private lines = 0;
  private enc = new TextEncoder();

  private constructor(private file: Deno.FsFile) {}

  /** Opens the journal; `noted` are the ids a previous daemon left in it. */
  static async open(
    path: string,
  ): Promise<{ journal: StartJournal; noted: string[] }> {
    const text = await Deno.readTextFile(path).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return "";
      throw e;
    });
    const file = await Deno.open(path, {
      create: true,
      append: true,
      mode: 0o600,
    });
    const noted = text.split("\n").filter((l) => l !== "");
    return { journal: new StartJournal(file), noted };
  }

  /** Durably notes that `id` is about to start. */
  note(id: string): void {
    this.file.writeSync(this.enc.encode(`${id}\n`));
    this.file.syncDataSync();
    this.pending.add(id);
    this.lines++;
  }

  /** The database has recorded `id` as started (or it never will). */
  settled(id: string): void {
    this.pending.delete(id);
    if (this.pending.size === 0 && this.lines >= 256) this.clear();
  }

  /** Empties the journal (its ids are all recorded in the database). */
  clear(): void {
    this.file.truncateSync(0);
    this.file.syncDataSync();
    this.lines = 0;
  }

  close(): void {
    this.file.close();
  }
}
