/** The one place the version lives; `--version` prints it and deploy checks it. */
export const VERSION = "0.1.0";
