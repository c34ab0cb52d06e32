// Per-initiator login counters (lib/common/initiators.ts): which name a count goes under, and
// the bound on how many names are kept.
import { describe, expect, it } from 'vitest';
import { InitiatorCounters, MAX_INITIATORS, UNKNOWN_INITIATOR } from '../../../lib/common/initiators.js';

describe('InitiatorCounters', () => {
  it('logins and failures of known initiators under their names; unknown failures pooled', () => {
    const c = new InitiatorCounters();
    c.count('logins', 'iqn.a', false); // a login that succeeded is always known
    c.count('logouts', 'iqn.a', true);
    c.count('loginFailures', 'iqn.b', true); // an ACL names it
    c.count('chapFailures', 'iqn.b', true);
    c.count('loginFailures', 'iqn.made-up', false);
    c.count('chapFailures', 'iqn.made-up-2', false);
    c.count('loginFailures', undefined, false); // no InitiatorName at all
    c.count('loginFailures', 'iqn.a', false); // known from its login
    expect(c.toJSON()).toEqual({
      'iqn.a': { logins: 1, logouts: 1, loginFailures: 1, chapFailures: 0 },
      'iqn.b': { logins: 0, logouts: 0, loginFailures: 1, chapFailures: 1 },
      [UNKNOWN_INITIATOR]: { logins: 0, logouts: 0, loginFailures: 2, chapFailures: 1 },
    });
  });

  it(`keeps at most ${MAX_INITIATORS} rows; past the cap new names count as unknown, old rows keep counting`, () => {
    const c = new InitiatorCounters(3);
    c.count('loginFailures', 'x', false); // the unknown row does not take a named row's place
    for (const n of ['a', 'b', 'c', 'd', 'e']) c.count('logins', n, true);
    c.count('logins', 'a', true);
    const j = c.toJSON();
    expect(Object.keys(j).sort()).toEqual(['a', 'b', 'c', UNKNOWN_INITIATOR]);
    expect(j.a!.logins).toBe(2);
    expect(j[UNKNOWN_INITIATOR]).toEqual({ logins: 2, logouts: 0, loginFailures: 1, chapFailures: 0 });
    expect(MAX_INITIATORS).toBe(256);
  });
});
