/** Domain ids as Xen allows them: 0..0x7fef (DOMID_FIRST_RESERVED is 0x7ff0). */
import { InvalidConfigError } from '../errors';

export const DOMID_MAX = 0x7fef;

export function checkDomid(name: string, domid: number): number {
  if (!Number.isInteger(domid) || domid < 0 || domid > DOMID_MAX) {
    throw new InvalidConfigError(name, domid, `a domain id, an integer from 0 to ${DOMID_MAX}`);
  }
  return domid;
}
