import type { RolloutSpec } from '../config/rollout-schema.js';
import type { StoredKey } from '../store/etcd-writer.js';
import { withWeights, type RolloutEdit } from '../store/rollout-writer.js';
import { applyMove, type Move } from './machine.js';

/** What a move writes: the rollout JSON with its new status, and the service with the move's weights when it sets them. */
export function moveEdit(service: string, raw: Record<string, unknown>, spec: RolloutSpec, stored: StoredKey, move: Move, now = new Date()): RolloutEdit {
  const rollout = { ...raw, status: applyMove(spec.status, move, now) };
  return move.weights === null ? { rollout } : { rollout, service: withWeights(service, stored, spec.from, spec.to, move.weights) };
}
