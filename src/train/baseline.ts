/**
 * The unigram baseline (bytes with the byte tokenizer): the cross-entropy on validation targets of a model that predicts every
 * token with its training-set frequency (add-one smoothed). A trained model must beat it clearly;
 * it is what "learned nothing about context" scores.
 */
export function unigramCrossEntropy(train: ArrayLike<number>, targets: Iterable<ArrayLike<number>>, vocabSize: number): number {
  const counts = new Float64Array(vocabSize).fill(1);
  for (let i = 0; i < train.length; i++) counts[train[i]!]! += 1;
  const total = counts.reduce((a, b) => a + b, 0);
  let nats = 0;
  let n = 0;
  for (const batch of targets) {
    for (let i = 0; i < batch.length; i++) {
      nats -= Math.log(counts[batch[i]!]! / total);
      n++;
    }
  }
  return nats / n;
}
