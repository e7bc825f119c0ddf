/**
 * The built-in inline connector class (references `via: 'inline'`): the bytes travel base64 inside
 * the reference, and so inside the control message. Nothing to free. A payload too large for one
 * control line ({@link INLINE_MAX_BYTES}) goes to the `large` connector instead (shared memory).
 *
 * Imported by the worker SDK: node built-ins only.
 */
import { INLINE_MAX_BYTES } from './connector-config.js';
import type { PayloadConnector, PayloadPutContext } from './payload-connector.js';
import { inlinePayloadRef, type PayloadRef } from './payload-ref.js';

/** The `via` of the class's references. */
export const INLINE_VIA = 'inline';

/** The inline connector; `large` stores what does not fit in a control line. */
export function createInlineConnector(large: () => Promise<PayloadConnector>): PayloadConnector {
  return {
    async put(bytes: Uint8Array, context: PayloadPutContext): Promise<PayloadRef> {
      if (bytes.byteLength <= INLINE_MAX_BYTES) return inlinePayloadRef(bytes, context.meta);
      return (await large()).put(bytes, context);
    },
    get(ref: PayloadRef): Buffer {
      return Buffer.from(ref.data_base64 ?? '', 'base64');
    },
  };
}
