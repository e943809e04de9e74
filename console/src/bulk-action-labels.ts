import { BulkActionKind } from '@stackshift/proto/operator-service'

export const bulkKindLabels: Record<BulkActionKind, string> = {
  [BulkActionKind.BULK_ACTION_KIND_UNSPECIFIED]: 'unknown',
  [BulkActionKind.BULK_ACTION_KIND_CANCEL]: 'cancel',
  [BulkActionKind.BULK_ACTION_KIND_RERUN]: 'rerun',
  [BulkActionKind.BULK_ACTION_KIND_REPLAY]: 'replay',
  [BulkActionKind.UNRECOGNIZED]: 'unknown',
}
