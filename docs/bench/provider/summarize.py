import re, statistics as st, collections
d = collections.defaultdict(list)
for l in open('/tmp/provbench/results.txt'):
    if not l.startswith('RESULT'): continue
    _, prov, label, *kv = l.split()
    for x in kv:
        k, v = x.split('=')
        if k == 'n': continue
        d[(label, k, prov)].append(float(v))
keys = sorted({(a, b) for a, b, _ in d}, key=lambda t: list(dict.fromkeys(k[:2] for k in d)).index(t))
for label, k in keys:
    r, a = d[(label, k, 'ring')], d[(label, k, 'aws-lc-rs')]
    mr, ma = st.median(r), st.median(a)
    print(f"{label:38s} {k:16s} ring={mr:9.1f} [{min(r):.0f}-{max(r):.0f}]  aws={ma:9.1f} [{min(a):.0f}-{max(a):.0f}]  aws/ring={ma/mr:.2f}  n={len(r)},{len(a)}")
