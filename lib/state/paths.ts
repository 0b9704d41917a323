/**
 * Where things live on a machine, relative to its home. One place, so the
 * laptop, the flagship and the ships agree.
 */
function home(): string {
  const h = Deno.env.get("HOME");
  if (!h) throw new Error("HOME is not set");
  return h;
}

export const paths = {
  home,
  dir: (h = home()) => `${h}/.ohcommodore`,
  identity: (h = home()) => `${h}/.ohcommodore/identity.json`,
  config: (h = home()) => `${h}/.ohcommodore/config.json`,
  fleet: (h = home()) => `${h}/.ohcommodore/fleet.json`,
  secrets: (h = home()) => `${h}/.ohcommodore/secrets`,
  bin: (h = home()) => `${h}/.ohcommodore/bin/ohcommodore`,
  localRoot: (h = home()) => `${h}/.ohcommodore/local`,
};

/** The same paths as seen from the far side of a transport (home-relative). */
export const remotePaths = {
  identity: ".ohcommodore/identity.json",
  bin: ".ohcommodore/bin/ohcommodore",
  secrets: ".ohcommodore/secrets",
};
