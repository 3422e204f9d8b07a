/**
 * A service reloads on SIGHUP. One that comes while the service starts (`systemctl reload` right
 * after `start`) must not end it, which is SIGHUP's default action, and which systemd counts as a
 * clean exit, so Restart=on-failure would leave the unit dead. The handler goes in as soon as the
 * entry module runs, and the loop takes over what it saw: a reload right after the start.
 */
let seen = false;
const onHangup = () => {
  seen = true;
};

export function catchHangupsAtStart(): void {
  if (process.listeners('SIGHUP').includes(onHangup)) return;
  process.on('SIGHUP', onHangup);
}

/** Stops catching, and says whether a SIGHUP came meanwhile. */
export function releaseHangupsAtStart(): boolean {
  process.off('SIGHUP', onHangup);
  const was = seen;
  seen = false;
  return was;
}
