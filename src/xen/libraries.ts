/**
 * Which of Xen's libraries this process can use. The addon loads them with dlopen on first use
 * (native/xen/libs.c), so it loads on hosts without Xen; here that becomes a list, and a typed error
 * that names each missing library and why.
 */
import { XenUnavailableError } from './errors';
import { loadNativeXen } from './native';

export type XenLibraryName =
  | 'libxentoollog'
  | 'libxenctrl'
  | 'libxenguest'
  | 'libxenevtchn'
  | 'libxengnttab'
  | 'libxenstore'
  | 'libxenforeignmemory';

export interface XenLibrary {
  name: XenLibraryName;
  /** The file dlopen looked for, e.g. libxenctrl.so.4.17. */
  soname: string;
  loaded: boolean;
  /** Why it did not load (dlopen's message, or the symbol it lacks). */
  error?: string;
}

export function xenLibraries(): XenLibrary[] {
  return loadNativeXen()
    .xenLibraries()
    .map((l) => ({ name: l.name as XenLibraryName, soname: l.soname, loaded: l.loaded, ...(l.error ? { error: l.error } : {}) }));
}

/** Throws a XenUnavailableError naming every library of `names` that is missing. */
export function requireXenLibraries(names: readonly XenLibraryName[]): void {
  const missing = xenLibraries().filter((l) => names.includes(l.name) && !l.loaded);
  if (missing.length === 0) return;
  throw new XenUnavailableError(
    missing.map((l) => l.name),
    `Xen's libraries are missing: ${missing.map((l) => `${l.name} (${l.error})`).join('; ')}. ` +
      'Install Xen 4.17 (Debian: xen-utils-4.17, libxenmisc4.17 and the libxen* runtime libraries), or run inside the Xen test host',
  );
}
