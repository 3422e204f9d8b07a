/** A stored document that cannot be read back: the state is damaged, not the folder or the server unusable. */
export class DamagedStateError extends Error {
  override name = 'DamagedStateError';
}
