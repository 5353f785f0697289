/** Recursively freezes plain objects and arrays (Maps, Sets and class instances are left alone). */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (Array.isArray(value) || proto === Object.prototype || proto === null) {
      Object.freeze(value);
      for (const child of Object.values(value as object)) deepFreeze(child);
    }
  }
  return value;
}
