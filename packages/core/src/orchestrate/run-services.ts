import type { Logger } from 'pino';
import type { EventBus } from '../events/event-bus.js';

/** What a running pipeline, its router and its supervisor report through: the run's events and a logger. */
export interface RunServices {
  readonly events: EventBus;
  readonly logger: Logger;
}
